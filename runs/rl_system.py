"""RL recipes (``run.kind = "rl"``): a gymnasium env and a PPO policy split into agents, typed from birth.

    [run]     kind = "rl", steps (env steps, all copies), seed, eval_every (env steps; 0 = only at the end)
    [env]     id, kwargs, num_envs, threshold, window, eval_episodes     (agents.RlEnvConfig)
    [ppo]     CleanRL's hyper-parameters                                 (agents.PpoConfig)
    [[agents]] name, kind = "encoder" | "recurrent" | "actor_critic", hidden, lr, period (agents.RlAgentConfig)
    [[edges]]  from, to, backward, synthesizer                           (agents.RlEdgeConfig)
    [defaults.edge]  backward, synthesizer: for agent-to-agent edges that do not set their own

The agents form a chain ``env -> encoder ... -> actor_critic``; a ``recurrent`` agent (the slow agent of a
hierarchy, ``agents.RecurrentStage``) may be its first. Every table is a pydantic model; a bad key or
value is a ``RecipeError`` naming it (``edges[1].backward: expected one of ...``) before any process starts.
``return_curves`` draws the run's training returns against env steps and against wall-clock;
``python -m runs.rl_system plot OUT.png RUN...`` draws several runs' on one figure (``compare_returns``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from agents import (
    ENV,
    NodeSpec,
    PpoConfig,
    RlAgentConfig,
    RlEdgeConfig,
    RlEnvConfig,
    RlSynthesizerConfig,
    Strict,
    make_vector_env,
    space_facts,
)

from .config import check
from .recipe import RecipeError
from .records import read_evals, read_jsonl

__all__ = ["RlPlan", "RlRecipe", "compare_returns", "plan_rl", "return_curves", "rl_specs"]


class RlRun(Strict):
    """``[run]`` of an RL recipe."""

    kind: Literal["rl"]
    name: str = ""
    description: str = ""
    steps: int = Field(500_000, ge=1, description="env steps, all copies together")
    seed: int = 0
    eval_every: int = Field(0, ge=0)
    metrics_every: int = Field(50, ge=1, description="vector steps between throughput rows")
    launcher: Literal["local", "inproc", "ray"] = "local"
    transport: Literal["ipc", "tcp"] = "ipc"
    address: str = ""
    keys: str = ""


class RlEdgeDefaults(Strict):
    backward: Literal["backprop", "dni", "cdni", "none"] | None = None
    synthesizer: RlSynthesizerConfig | None = None


class RlDefaults(Strict):
    edge: RlEdgeDefaults = RlEdgeDefaults()


class RlRecipe(Strict):
    run: RlRun
    env: RlEnvConfig
    ppo: PpoConfig = PpoConfig()
    defaults: RlDefaults = RlDefaults()
    agents: list[RlAgentConfig] = Field(min_length=2)
    edges: list[RlEdgeConfig] = Field(min_length=2)
    paper: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _edge_defaults(cls, recipe: Any) -> Any:
        """``[defaults.edge]`` under every agent-to-agent edge's own keys, so ``--set defaults.edge.*`` works."""
        if not isinstance(recipe, dict):
            return recipe
        defaults = recipe.get("defaults", {})
        edge_defaults = defaults.get("edge", {}) if isinstance(defaults, dict) else {}
        if isinstance(edge_defaults, dict) and isinstance(recipe.get("edges"), list):
            edge_defaults = {k: v for k, v in edge_defaults.items() if v is not None}
            recipe = {**recipe, "edges": [
                {**edge_defaults, **e} if isinstance(e, dict) and e.get("from") != ENV else e for e in recipe["edges"]]}
        return recipe


@dataclass
class RlPlan:
    recipe: RlRecipe
    chain: list[RlAgentConfig]       # env-fed encoder first, the actor_critic last
    in_edges: dict[str, RlEdgeConfig]
    facts: dict[str, Any]            # obs_dim, action_dim, continuous
    rollouts: int


def _chain(model: RlRecipe) -> tuple[list[RlAgentConfig], dict[str, RlEdgeConfig]]:
    """The agents in order from the environment, with each one's input edge; RecipeError otherwise."""
    agents = {a.name: a for a in model.agents}
    if len(agents) != len(model.agents):
        raise RecipeError(f"agents: duplicate names in {[a.name for a in model.agents]}")
    in_edges: dict[str, RlEdgeConfig] = {}
    out_of: dict[str, str] = {}
    for i, e in enumerate(model.edges):
        for key, end in (("from", e.sender), ("to", e.to)):
            if end != ENV and end not in agents:
                raise RecipeError(f"edges[{i}].{key}: unknown agent {end!r} (agents: {sorted(agents)})")
        if e.to == ENV:
            raise RecipeError(f"edges[{i}].to: actions reach the env from the actor_critic; no edge is needed")
        if e.sender == ENV and (e.backward != "backprop" or e.synthesizer != RlSynthesizerConfig()):
            raise RecipeError(f"edges[{i}].backward: an edge from the environment carries no gradient")
        if e.to in in_edges:
            raise RecipeError(f"edges[{i}].to: {e.to!r} already has an input edge (a policy is a chain)")
        if e.sender in out_of:
            raise RecipeError(f"edges[{i}].from: {e.sender!r} already has an output edge (a policy is a chain)")
        in_edges[e.to], out_of[e.sender] = e, e.to
    chain, node = [], ENV
    while node in out_of:
        node = out_of[node]
        chain.append(agents[node])
    missing = sorted(set(agents) - {a.name for a in chain})
    if missing:
        raise RecipeError(f"edges: agents {missing} are not on the chain from the environment")
    for i, a in enumerate(chain):
        want = "actor_critic" if i == len(chain) - 1 else "encoder"
        if a.kind == "recurrent" and want == "encoder":
            if i:
                raise RecipeError(f"agents.{a.name}.kind: a recurrent agent reads the environment (first in the chain)")
            continue
        if a.kind != want:
            raise RecipeError(f"agents.{a.name}.kind: the chain's {'last' if want != 'encoder' else 'inner'} "
                              f"agent must be an {want}, got {a.kind!r}")
    return chain, in_edges


def plan_rl(recipe: dict[str, Any], default_name: str = "") -> tuple[dict[str, Any], RlPlan]:
    """Check an RL recipe completely (nothing started); returns (recipe with defaults, plan)."""
    model = check(RlRecipe, recipe)
    chain, in_edges = _chain(model)
    if model.run.launcher == "ray":  # an optional extra: say how to install it before anything starts
        from agents.ray_launcher import RayUnavailable, require_ray

        try:
            require_ray()
        except RayUnavailable as err:
            raise RecipeError(f"run.launcher: {err}") from None
    try:
        venv = make_vector_env(model.env.id, model.env.kwargs, 1)
        facts = space_facts(venv)
        venv.close()
    except Exception as err:  # noqa: BLE001 - any failure here is a recipe problem
        raise RecipeError(f"env.id: cannot serve {model.env.id!r} with kwargs {model.env.kwargs}: "
                          f"{type(err).__name__}: {err}") from None
    batch = model.ppo.num_steps * model.env.num_envs
    if model.run.steps < batch:
        raise RecipeError(f"run.steps: at least one rollout (ppo.num_steps x env.num_envs = {batch} env steps), "
                          f"got {model.run.steps}")
    if batch % model.ppo.num_minibatches:
        raise RecipeError(f"ppo.num_minibatches: must divide a rollout's {batch} samples, got "
                          f"{model.ppo.num_minibatches}")
    for a in chain:
        if a.kind == "encoder" and a.hidden[-1] * model.ppo.towers < 1:
            raise RecipeError(f"agents.{a.name}.hidden: empty")
    if chain[0].kind == "recurrent" and model.env.num_envs % model.ppo.num_minibatches:
        raise RecipeError(f"ppo.num_minibatches: must divide env.num_envs ({model.env.num_envs}) with a recurrent "
                          f"agent (its minibatches are groups of env copies), got {model.ppo.num_minibatches}")
    if not model.run.name:
        model.run.name = default_name
    resolved = model.model_dump(by_alias=True, exclude={"defaults"})
    resolved["edges"] = [e.model_dump(by_alias=True) for e in model.edges]
    return resolved, RlPlan(model, chain, in_edges, facts, model.run.steps // batch)


def rl_specs(recipe: dict[str, Any], plan: RlPlan, run_dir: str) -> list[NodeSpec]:
    """The env node, the encoder stages and the head, one process each (one torch thread: small networks)."""
    model = plan.recipe
    run, ppo = model.run, model.ppo.model_dump()
    chain = plan.chain
    context = [a.name for i, a in enumerate(chain[:-1])
               if plan.in_edges[chain[i + 1].name].backward == "cdni" or a.kind == "recurrent"]  # labels to them
    specs = [NodeSpec(ENV, "agents:RlEnvNode", dict(
        env=model.env.model_dump(), first=chain[0].name, head=chain[-1].name, context=context, steps=run.steps,
        num_steps=model.ppo.num_steps, seed=run.seed, eval_every=run.eval_every, metrics_every=run.metrics_every),
        required=True)]
    in_dim = plan.facts["obs_dim"]
    for i, agent in enumerate(chain):
        common = dict(agent=agent.model_dump(), in_edge=plan.in_edges[agent.name].model_dump(by_alias=True),
                      ppo=ppo, facts=plan.facts, in_dim=in_dim, num_envs=model.env.num_envs,
                      rollouts=plan.rollouts, seed=run.seed * 1000 + i, run_dir=run_dir)
        if agent.kind != "actor_critic":
            out = plan.in_edges[chain[i + 1].name].model_dump(by_alias=True)
            target = "agents:PolicyStage" if agent.kind == "encoder" else "agents:RecurrentStage"
            specs.append(NodeSpec(agent.name, target, dict(**common, out_edge=out, order_seed=run.seed)))
            in_dim = agent.hidden[-1] * model.ppo.towers if agent.kind == "encoder" else in_dim + agent.hidden[0]
        else:
            specs.append(NodeSpec(agent.name, "agents:PolicyHead", common))
    return specs


def return_curves(run_dir: Path) -> Path | None:
    """``plots/returns.png``: training episode returns (and the deterministic evaluations) against env steps
    (left) and wall-clock seconds (right)."""
    run_dir = Path(run_dir)
    rows = [r for r in read_jsonl(run_dir / "metrics" / "env.jsonl") if "returns" in r]
    evals = [r for r in read_evals(run_dir) if "mean_return" in r]
    if not rows and not evals:
        return None
    import matplotlib  # here: every spawned agent process imports this package

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, x, label in ((axes[0], "env_steps", "env steps"), (axes[1], "wall_s", "wall-clock (s)")):
        ax.plot([r[x] for r in rows], [r["episode_return"] for r in rows], lw=0.5, alpha=0.35, label="episodes")
        ax.plot([r[x] for r in rows], [r["return_mean"] for r in rows], label="mean of the last `env.window` episodes")
        ax.plot([r[x] for r in evals], [r["mean_return"] for r in evals],
                marker="o", ls="", label="deterministic evaluation")
        ax.set_xlabel(label)
        ax.set_ylabel("return")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(run_dir.name, fontsize=9)
    fig.tight_layout()
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    path = out / "returns.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare_returns(run_dirs: list[Path], path: Path) -> Path:
    """One PNG: each run's mean of its last ``env.window`` training returns against env steps and wall-clock."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for run_dir in map(Path, run_dirs):
        rows = [r for r in read_jsonl(run_dir / "metrics" / "env.jsonl") if "returns" in r]
        for ax, x in zip(axes, ("env_steps", "wall_s")):
            ax.plot([r[x] for r in rows], [r["return_mean"] for r in rows], label=run_dir.name, lw=1.2)
    for ax, label in zip(axes, ("env steps", "wall-clock (s)")):
        ax.set_xlabel(label)
        ax.set_ylabel("training return (mean of the last episodes)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] != "plot":
        raise SystemExit("usage: python -m runs.rl_system plot OUT.png RUN_DIR...")
    print(compare_returns([Path(p) for p in sys.argv[3:]], Path(sys.argv[2])))
