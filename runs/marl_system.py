"""Multi-agent RL recipes (``run.kind = "marl"``): a PettingZoo Parallel env, one PPO policy per env agent, and
message edges between the policies, typed from birth.

    [run]      kind = "marl", steps (env steps, all copies), seed, eval_every         (as run.kind = "rl")
    [env]      id = "package.module:callable" (a Parallel env), kwargs, num_envs, window, eval_episodes
                                                                                     (agents.MarlEnvConfig)
    [ppo]      CleanRL's hyper-parameters, shared by every policy                    (agents.PpoConfig)
    [[agents]] name, kind = "encoder" | "actor_critic", hidden, lr, merge ("concat" | "sum": a receiver's rule)
    [[edges]]  from, to, backward, synthesizer; on an edge from "env": observes (the env agent whose
               observations it carries) and drop (observation indices removed); message = true: a message edge

Every env agent is observed by one edge from ``env``, whose chain ``env -> encoder ... -> actor_critic`` is its
policy: the head acts for that env agent (independent PPO, one ``[ppo]``, the same minibatch draws). A message
edge runs from any encoder to another policy's first encoder (``agents.CommStage``; the receiver merges it with
its observation), with backward ``backprop`` (DIAL), ``dni`` or ``none``; messages are of the same step, so they
may not form a cycle. Every check is done before any process starts; errors name the key (``edges[3].to: ...``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from agents import (
    ENV,
    MarlEnvConfig,
    NodeSpec,
    PpoConfig,
    RlAgentConfig,
    RlEdgeConfig,
    RlSynthesizerConfig,
    Strict,
    parallel_facts,
)

from .config import check
from .recipe import RecipeError
from .rl_system import RlRun

__all__ = ["MarlPlan", "MarlRecipe", "marl_specs", "plan_marl"]


class MarlRun(RlRun):
    """``[run]`` of a multi-agent recipe."""

    kind: Literal["marl"]  # type: ignore[assignment]


class MarlAgentConfig(RlAgentConfig):
    """``[[agents]]``: an RL agent; ``merge`` is how a receiver joins its observation and its messages."""

    merge: Literal["concat", "sum"] = "concat"


class MarlEdgeConfig(RlEdgeConfig):
    """``[[edges]]``: an RL edge, with ``observes`` / ``drop`` on an edge from the env and ``message`` for a
    message edge between two policies."""

    backward: Literal["backprop", "dni", "none"] = "backprop"  # cdni: the env's context is not routed here
    observes: str = Field("", description="the env agent whose observations an edge from env carries")
    drop: list[int] = Field([], description="observation indices removed before the reader sees them")
    message: bool = False

    @model_validator(mode="after")
    def _kinds(self) -> MarlEdgeConfig:
        if self.sender == ENV:
            if not self.observes:
                raise ValueError("observes: an edge from env names the env agent whose observations it carries")
            if self.message:
                raise ValueError("message: the env sends observations, not messages")
        elif self.observes or self.drop:
            raise ValueError(f"{'observes' if self.observes else 'drop'}: only an edge from env carries observations")
        if any(i < 0 for i in self.drop):
            raise ValueError(f"drop: indices are >= 0, got {self.drop}")
        return self


class MarlRecipe(Strict):
    run: MarlRun
    env: MarlEnvConfig
    ppo: PpoConfig = PpoConfig()
    agents: list[MarlAgentConfig] = Field(min_length=2)
    edges: list[MarlEdgeConfig] = Field(min_length=2)
    paper: dict[str, Any] = {}


@dataclass
class MarlPlan:
    recipe: MarlRecipe
    chains: dict[str, list[MarlAgentConfig]]   # env agent -> its policy, first encoder to actor_critic
    in_edges: dict[str, MarlEdgeConfig]        # agent -> its policy in-edge (from env or the previous encoder)
    messages: list[MarlEdgeConfig]
    facts: dict[str, dict[str, Any]]           # env agent -> obs_dim, action_dim, continuous
    rollouts: int


def _policies(model: MarlRecipe, facts: dict[str, dict[str, Any]]) -> tuple[dict[str, list[MarlAgentConfig]],
                                                                             dict[str, MarlEdgeConfig]]:
    """Each env agent's chain of agents, and every agent's policy in-edge; RecipeError naming the key otherwise."""
    agents = {a.name: a for a in model.agents}
    if len(agents) != len(model.agents):
        raise RecipeError(f"agents: duplicate names in {[a.name for a in model.agents]}")
    in_edges: dict[str, MarlEdgeConfig] = {}
    out_of: dict[str, str] = {}
    observed: dict[str, str] = {}
    for i, e in enumerate(model.edges):
        for key, end in (("from", e.sender), ("to", e.to)):
            if end != ENV and end not in agents:
                raise RecipeError(f"edges[{i}].{key}: unknown agent {end!r} (agents: {sorted(agents)})")
        if e.to == ENV:
            raise RecipeError(f"edges[{i}].to: actions reach the env from each actor_critic; no edge is needed")
        if e.message:
            continue
        if e.sender == ENV:
            if e.observes not in facts:
                raise RecipeError(f"edges[{i}].observes: unknown env agent {e.observes!r} "
                                  f"(env agents: {sorted(facts)})")
            if e.observes in observed:
                raise RecipeError(f"edges[{i}].observes: {e.observes!r} already has a policy "
                                  f"({observed[e.observes]!r})")
            bad = [j for j in e.drop if j >= facts[e.observes]["obs_dim"]]
            if bad:
                raise RecipeError(f"edges[{i}].drop: {e.observes!r} has {facts[e.observes]['obs_dim']} observation "
                                  f"values, cannot drop {bad}")
            if e.backward != "backprop" or e.synthesizer != RlSynthesizerConfig():
                raise RecipeError(f"edges[{i}].backward: an edge from the environment carries no gradient")
            observed[e.observes] = e.to
        elif e.sender in out_of:
            raise RecipeError(f"edges[{i}].from: {e.sender!r} already has a policy out-edge (a policy is a chain; "
                              "set message = true for a message edge)")
        if e.to in in_edges:
            raise RecipeError(f"edges[{i}].to: {e.to!r} already has a policy in-edge (a policy is a chain; "
                              "set message = true for a message edge)")
        in_edges[e.to] = e
        if e.sender != ENV:
            out_of[e.sender] = e.to
    unobserved = sorted(set(facts) - set(observed))
    if unobserved:
        raise RecipeError(f"edges: env agents {unobserved} have no policy (an edge from env with observes = ...)")
    chains: dict[str, list[MarlAgentConfig]] = {}
    for env_agent, node in observed.items():
        chain = [agents[node]]
        while node in out_of:
            node = out_of[node]
            chain.append(agents[node])
        for j, a in enumerate(chain):
            want = "actor_critic" if j == len(chain) - 1 else "encoder"
            if a.kind != want:
                raise RecipeError(f"agents.{a.name}.kind: {'the last' if j == len(chain) - 1 else 'an inner'} agent "
                                  f"of {env_agent!r}'s policy must be an {want}, got {a.kind!r}")
        chains[env_agent] = chain
    missing = sorted(set(agents) - {a.name for c in chains.values() for a in c})
    if missing:
        raise RecipeError(f"edges: agents {missing} are on no policy from the environment")
    return chains, in_edges


def _check_messages(model: MarlRecipe, chains: dict[str, list[MarlAgentConfig]]) -> list[MarlEdgeConfig]:
    """Message edges: encoder -> another policy's first encoder, once per pair, no cycle; RecipeError otherwise."""
    policy_of = {a.name: env_agent for env_agent, chain in chains.items() for a in chain}
    firsts = {chain[0].name for chain in chains.values()}
    kinds = {a.name: a.kind for a in model.agents}
    messages, seen, talks = [], set(), {p: set() for p in chains}
    for i, e in enumerate(model.edges):
        if not e.message:
            continue
        if kinds[e.sender] != "encoder":
            raise RecipeError(f"edges[{i}].from: a message comes from an encoder's output, {e.sender!r} is an "
                              f"{kinds[e.sender]}")
        if e.to not in firsts:
            raise RecipeError(f"edges[{i}].to: a message goes to a policy's first encoder (one of {sorted(firsts)})")
        if policy_of[e.sender] == policy_of[e.to]:
            raise RecipeError(f"edges[{i}].to: {e.sender!r} and {e.to!r} are the same policy's")
        if e.name in seen:
            raise RecipeError(f"edges[{i}]: a second message edge {e.name}")
        seen.add(e.name)
        talks[policy_of[e.sender]].add(policy_of[e.to])
        messages.append(e)
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(p: str, path: list[str]) -> None:
        state[p] = 1
        for q in sorted(talks[p]):
            if state.get(q) == 1:
                raise RecipeError(f"edges: message edges form a cycle ({' -> '.join([*path, p, q])}); messages are of "
                                  "the same step, so every policy would wait for another")
            if q not in state:
                visit(q, [*path, p])
        state[p] = 2

    for p in sorted(talks):
        if p not in state:
            visit(p, [])
    return messages


def plan_marl(recipe: dict[str, Any]) -> MarlPlan:
    """Check a multi-agent recipe completely (nothing started)."""
    model = check(MarlRecipe, recipe)
    try:
        facts = parallel_facts(model.env.id, model.env.kwargs)
    except Exception as err:  # noqa: BLE001 - any failure here is a recipe problem
        raise RecipeError(f"env.id: cannot serve {model.env.id!r} with kwargs {model.env.kwargs}: "
                          f"{type(err).__name__}: {err}") from None
    chains, in_edges = _policies(model, facts)
    messages = _check_messages(model, chains)
    batch = model.ppo.num_steps * model.env.num_envs
    if model.run.steps < batch:
        raise RecipeError(f"run.steps: at least one rollout (ppo.num_steps x env.num_envs = {batch} env steps), "
                          f"got {model.run.steps}")
    if batch % model.ppo.num_minibatches:
        raise RecipeError(f"ppo.num_minibatches: must divide a rollout's {batch} samples, got "
                          f"{model.ppo.num_minibatches}")
    return MarlPlan(model, chains, in_edges, messages, facts, model.run.steps // batch)


def marl_specs(recipe: dict[str, Any], plan: MarlPlan, run_dir: str) -> list[NodeSpec]:
    """The env node and every policy's encoders and head, one process each."""
    model = plan.recipe
    run, ppo = model.run, model.ppo.model_dump()
    towers = model.ppo.towers
    width = {a.name: a.hidden[-1] * towers for a in model.agents if a.kind == "encoder"}
    routes = {p: {"readers": [c[0].name], "head": c[-1].name, "drop": list(plan.in_edges[c[0].name].drop)}
              for p, c in plan.chains.items()}
    specs = [NodeSpec(ENV, "agents:MarlEnvNode", dict(
        env=model.env.model_dump(), routes=routes, steps=run.steps, num_steps=model.ppo.num_steps, seed=run.seed,
        eval_every=run.eval_every, metrics_every=run.metrics_every), required=True)]
    index = 0
    for p, chain in plan.chains.items():
        facts = plan.facts[p]
        in_dim = facts["obs_dim"] - len(set(plan.in_edges[chain[0].name].drop))
        for j, agent in enumerate(chain):
            common = dict(agent=agent.model_dump(exclude={"merge"}),
                          in_edge=plan.in_edges[agent.name].model_dump(by_alias=True, exclude={"observes", "drop",
                                                                                               "message"}),
                          ppo=ppo, facts=facts, in_dim=in_dim, num_envs=model.env.num_envs, rollouts=plan.rollouts,
                          seed=run.seed * 1000 + index, run_dir=run_dir)
            index += 1
            if agent.kind == "actor_critic":
                specs.append(NodeSpec(agent.name, "agents:PolicyHead", common))
                continue
            out = plan.in_edges[chain[j + 1].name].model_dump(by_alias=True, exclude={"observes", "drop", "message"})
            sends = [e for e in plan.messages if e.sender == agent.name]
            hears = [e for e in plan.messages if e.to == agent.name]
            kwargs = dict(**common, out_edge=out, order_seed=run.seed)  # one order_seed: the same minibatches
            if sends or hears:
                dump = [e.model_dump(by_alias=True, exclude={"observes", "drop", "message"}) for e in sends], \
                    [e.model_dump(by_alias=True, exclude={"observes", "drop", "message"}) for e in hears]
                kwargs.update(messages_out=dump[0], messages_in=dump[1], merge=agent.merge,
                              message_dims={e.name: width[e.sender] for e in hears})
                specs.append(NodeSpec(agent.name, "agents:CommStage", kwargs))
            else:
                specs.append(NodeSpec(agent.name, "agents:PolicyStage", kwargs))
            in_dim = width[agent.name]
    return specs
