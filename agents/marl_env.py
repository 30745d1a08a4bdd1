"""The environment node of a multi-agent RL system: N copies of a PettingZoo Parallel env, routed by agent name.

A PettingZoo Parallel env (``reset(seed=...)``; ``step(actions)`` returning observations, rewards, terminations,
truncations and infos keyed by agent name; ``observation_space(agent)``, ``action_space(agent)``) is made by a
factory ``package.module:callable`` (``mpe2.simple_speaker_listener_v4:parallel_env``) and runs as ``num_envs``
copies side by side (``ParallelCopies``), so every policy sees a batch ``[N, ...]`` per step as with gymnasium's
vector env, and the split PPO of ``agents.rl_policy`` serves each env agent unchanged. N copies, because a
rollout of one copy would give PPO one sample per round trip through the agents' processes.

Routing (``routes``: env agent -> the policy agents that read its observations and the head that acts for it),
per vector step ``s``:

- ``input(obs, s)`` ``[N, D]`` of env agent ``a`` to each of its readers on ``env->reader``, without the indices
  its route drops (the listener's view of the env's own channel, when a learned message replaces it);
- every head answers ``act(action, s)`` on ``head->env`` (checked as ``agents.rl_env.check_action`` does); the
  env steps once every head has answered;
- ``label(s)`` = (action ``[N, A]``, reward ``[N]``, done ``[N]``) of env agent ``a`` to its head.

Agents that leave: an agent terminated or truncated leaves its copy's ``env.agents``; until every agent of that
copy has left (then the copy resets, the same step) it is *dead*: its observation is zeros, its action is
discarded, its reward is 0 and done 1 (every dead step is an episode of its own with return 0, so GAE carries
nothing across). Episodes recorded: each agent's return and length, and the team's return (the mean of its
agents' returns; with a shared reward, as speaker-listener's, every agent's).

Rollout boundaries, evaluations and the final record as in ``agents.rl_env``: ``eval_episodes`` separate copies
seeded apart from training, every head's deterministic action, one episode each; ``mean_return`` is the team's,
``mean_return/<agent>`` each agent's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from pydantic import Field

from interfaces import Expectations, Kind, Message, TensorSpec

from .config import Strict
from .env_node import load_factory
from .rl_env import EVAL_SEED_OFFSET, EpisodeEnvNode, action_row, agent_facts, check_action

__all__ = ["MarlEnvConfig", "MarlEnvNode", "ParallelCopies", "parallel_facts"]

ENV = "env"


class MarlEnvConfig(Strict):
    """``[env]`` of a multi-agent recipe."""

    id: str = Field(min_length=1, description="'package.module:callable' making a PettingZoo Parallel env")
    kwargs: dict[str, Any] = {}
    num_envs: int = Field(8, ge=1)
    threshold: float | None = Field(None, description="team return for steps_to_threshold")
    window: int = Field(20, ge=1, description="training episodes averaged for return_mean and steps_to_threshold")
    eval_episodes: int = Field(20, ge=1)
    eval_max_steps: int = Field(10_000, ge=1, description="an evaluation stops after this many vector steps")


class ParallelCopies:
    """``n`` copies of a PettingZoo Parallel env stepped together, with arrays keyed by agent name.
    ``autoreset``: a copy whose agents have all left resets at once (training); otherwise it stays finished
    (evaluation: one episode per copy)."""

    def __init__(self, factory: Callable[..., Any], kwargs: dict[str, Any], n: int, autoreset: bool = True) -> None:
        self.envs = [factory(**kwargs) for _ in range(n)]
        first = self.envs[0]
        self.agents: list[str] = list(first.possible_agents)
        self.obs_space = {a: first.observation_space(a) for a in self.agents}
        self.act_space = {a: first.action_space(a) for a in self.agents}
        self.dims = {a: int(np.prod(s.shape)) for a, s in self.obs_space.items()}
        self.n, self.autoreset = n, autoreset

    def reset(self, seed: int) -> dict[str, np.ndarray]:
        """Copy i reset with seed ``seed + i``; observations ``{agent: [N, D]}``."""
        n, k = self.n, len(self.agents)
        self.live: list[set[str]] = [set() for _ in range(n)]
        self.returns, self.lengths = np.zeros((n, k)), np.zeros((n, k), dtype=np.int64)
        self.over = np.zeros(n, dtype=bool)
        obs = self._zeros()
        for i, env in enumerate(self.envs):
            o, _ = env.reset(seed=seed + i)
            self._fill(obs, i, o, env)
        return obs

    def _zeros(self) -> dict[str, np.ndarray]:
        return {a: np.zeros((self.n, d), dtype=np.float32) for a, d in self.dims.items()}

    def _fill(self, obs: dict[str, np.ndarray], i: int, o: dict[str, Any], env: Any) -> None:
        self.live[i] = set(env.agents)
        for a in env.agents:
            obs[a][i] = np.asarray(o[a], dtype=np.float32).reshape(-1)

    def _action(self, a: str, value: np.ndarray) -> Any:
        return int(value) if isinstance(self.act_space[a], gym.spaces.Discrete) else value

    def step(self, actions: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                            dict[str, np.ndarray], list[dict[str, Any]]]:
        """Step every live copy on ``actions`` ``{agent: [N, ...]}`` (dead agents' rows are ignored). Returns
        observations, rewards ``[N]`` and dones ``[N]`` per agent, and the episodes that ended: one dict per copy
        with ``returns`` / ``lengths`` per agent and the ``team`` return."""
        obs = self._zeros()
        rewards = {a: np.zeros(self.n, dtype=np.float32) for a in self.agents}
        dones = {a: np.ones(self.n, dtype=np.float32) for a in self.agents}  # dead until shown live
        finished: list[dict[str, Any]] = []
        for i, env in enumerate(self.envs):
            if self.over[i]:
                continue
            act = {a: self._action(a, actions[a][i]) for a in sorted(self.live[i])}
            try:
                o, r, term, trunc, _ = env.step(act)
            except Exception as err:
                raise RuntimeError(f"env copy {i} failed on actions {act}: {type(err).__name__}: {err}") from err
            for j, a in enumerate(self.agents):
                if a not in self.live[i]:
                    continue
                rewards[a][i] = float(r.get(a, 0.0))
                dones[a][i] = float(a not in env.agents or bool(term.get(a)) or bool(trunc.get(a)))
                self.returns[i, j] += rewards[a][i]
                self.lengths[i, j] += 1
            if env.agents:
                self._fill(obs, i, o, env)
                continue
            finished.append({"copy": i, "returns": dict(zip(self.agents, self.returns[i].tolist())),
                             "lengths": dict(zip(self.agents, self.lengths[i].tolist())),
                             "team": float(self.returns[i].mean()), "length": int(self.lengths[i].max())})
            self.returns[i], self.lengths[i] = 0.0, 0
            if self.autoreset:
                o, _ = env.reset()
                self._fill(obs, i, o, env)
            else:
                self.over[i], self.live[i] = True, set()
        return obs, rewards, dones, finished

    def close(self) -> None:
        for env in self.envs:
            env.close()


def parallel_facts(spec: str, kwargs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{agent: {obs_dim, continuous, action_dim}}`` of the env ``spec`` makes; ValueError naming the agent for
    spaces the node cannot serve."""
    copies = ParallelCopies(load_factory(spec), kwargs, 1)
    try:
        out = {}
        for a in copies.agents:
            try:
                out[a] = agent_facts(copies.obs_space[a], copies.act_space[a])
            except ValueError as err:
                raise ValueError(f"agent {a!r}: {err}") from None
        return out
    finally:
        copies.close()


class MarlEnvNode(EpisodeEnvNode):
    """Steps the copies once every head has acted, routes observations, actions and rewards by agent name."""

    name = ENV

    def __init__(self, env: dict[str, Any], routes: dict[str, dict[str, Any]], steps: int, num_steps: int,
                 seed: int = 0, eval_every: int = 0, metrics_every: int = 50) -> None:
        self.cfg = MarlEnvConfig(**env)
        self.routes = routes  # env agent -> {"readers": [policy agents], "head": name, "drop": [indices]}
        self.heads = {r["head"]: a for a, r in routes.items()}
        self.n = self.cfg.num_envs
        self.num_steps = num_steps
        self.end = steps // (num_steps * self.n) * num_steps  # vector steps
        self.seed, self.eval_every, self.metrics_every = seed, eval_every, metrics_every

    def expectations(self) -> Expectations:
        expect = Expectations()
        copies = ParallelCopies(load_factory(self.cfg.id), self.cfg.kwargs, 1)
        for a, route in self.routes.items():
            space = copies.act_space[a]
            spec = TensorSpec(torch.int64, (None,)) if isinstance(space, gym.spaces.Discrete) else \
                TensorSpec(torch.float32, (None, *space.shape))
            expect.allow(Kind.ACT, f"{route['head']}->{ENV}", route["head"], [spec])
        copies.close()
        return expect

    def peers(self) -> list[str]:
        return sorted({p for r in self.routes.values() for p in (*r["readers"], r["head"])})

    def start(self, rt) -> None:  # noqa: ANN001 - NodeRuntime
        super().start(rt)
        factory = load_factory(self.cfg.id)
        self.copies = ParallelCopies(factory, self.cfg.kwargs, self.n)
        self.eval_copies = ParallelCopies(factory, self.cfg.kwargs, self.cfg.eval_episodes, autoreset=False)
        missing = sorted(set(self.copies.agents) - set(self.routes))
        if missing:
            raise RuntimeError(f"env {self.cfg.id!r}: agents {missing} have no policy")
        self.keep = {a: [j for j in range(self.copies.dims[a]) if j not in set(r.get("drop", []))]
                     for a, r in self.routes.items()}
        self.actions: dict[tuple[str, str, int], torch.Tensor] = {}  # (phase, head, step) -> action
        self.start_counters()
        self._send_obs(self.copies.reset(self.seed))

    # -- messages ------------------------------------------------------------------------------------
    def on_message(self, msg: Message) -> None:
        self.actions[(msg.meta.get("phase", "act"), msg.sender, msg.step)] = msg.tensors[0]

    def _send_obs(self, obs: dict[str, np.ndarray], phase: str = "act", step: int | None = None,
                  meta: dict[str, Any] | None = None) -> None:
        s = self.step if step is None else step
        for a, route in self.routes.items():
            x = torch.from_numpy(np.ascontiguousarray(obs[a][:, self.keep[a]]))
            for reader in route["readers"]:
                self.rt.send(reader, Message(Kind.INPUT, ENV, f"{ENV}->{reader}", s, [x],
                                             {"phase": phase, **(meta or {})}))

    def _answered(self, phase: str, step: int) -> bool:
        return all((phase, h, step) in self.actions for h in self.heads)

    def _checked(self, copies: ParallelCopies, phase: str, step: int, n: int) -> dict[str, np.ndarray]:
        out = {}
        for head, a in self.heads.items():
            where = f"{'evaluation ' if phase == 'eval' else ''}action from {head!r} for {a!r} at step {step}"
            out[a] = check_action(copies.act_space[a], self.actions.pop((phase, head, step)), n, where)
        return out

    # -- work ------------------------------------------------------------------------------------------
    def work(self) -> bool:
        if self.done:
            return False
        if self.evaluation is not None:
            return self._eval_tick()
        if not self._answered("act", self.step):
            return False
        boundary = self.step % self.num_steps == 0 and self.step > 0
        if self.step >= self.end:
            self._start_eval(final=True)
            return True
        if boundary and self.eval_every and self.env_steps() >= self.next_eval:
            self.next_eval += self.eval_every
            self._start_eval(final=False)
            return True
        self._step_env(self._checked(self.copies, "act", self.step, self.n))
        return True

    def _step_env(self, actions: dict[str, np.ndarray]) -> None:
        try:
            obs, rewards, dones, finished = self.copies.step(actions)
        except RuntimeError as err:
            raise RuntimeError(f"env {self.cfg.id!r} at step {self.step}: {err}") from err
        for a, route in self.routes.items():
            label = [action_row(self.copies.act_space[a], actions[a]), torch.from_numpy(rewards[a]),
                     torch.from_numpy(dones[a])]
            self.rt.send(route["head"], Message(Kind.LABEL, ENV, f"{ENV}->{route['head']}", self.step, label))
        self.step += 1
        if finished:
            self._episodes(finished)
        if self.step % self.metrics_every == 0:
            now = time.monotonic()
            rate = (self.env_steps() - self.s_report) / max(now - self.t_report, 1e-9)
            self.rt.tell("metrics", step=self.env_steps(), steps=self.env_steps(), wall_s=now - self.t_start,
                         env_steps_per_s=rate, batches_per_s=rate)
            self.t_report, self.s_report = now, self.env_steps()
        self._send_obs(obs)

    def _episodes(self, finished: list[dict[str, Any]]) -> None:
        returns = [f["team"] for f in finished]
        for r in returns:
            self.episodes += 1
            self.recent.append(r)
            if (self.steps_to_threshold is None and self.cfg.threshold is not None
                    and len(self.recent) == self.recent.maxlen and np.mean(self.recent) >= self.cfg.threshold):
                self.steps_to_threshold = self.env_steps()
        per_agent = {f"return/{a}": float(np.mean([f["returns"][a] for f in finished])) for a in self.copies.agents}
        self.rt.tell("metrics", step=self.env_steps(), env_steps=self.env_steps(),
                     wall_s=time.monotonic() - self.t_start, episode_return=float(np.mean(returns)),
                     episode_length=float(np.mean([f["length"] for f in finished])), returns=returns,
                     return_mean=float(np.mean(self.recent)), episodes=self.episodes, **per_agent)

    # -- evaluation ------------------------------------------------------------------------------------
    def _start_eval(self, final: bool) -> None:
        obs = self.eval_copies.reset(self.seed + EVAL_SEED_OFFSET)
        self.evaluation = {"final": final, "k": 0, "finished": [], "t0": time.monotonic()}
        self._send_obs(obs, "eval", 0, {"round": self.round})

    def _eval_tick(self) -> bool:
        ev = self.evaluation
        if not self._answered("eval", ev["k"]):
            return False
        actions = self._checked(self.eval_copies, "eval", ev["k"], self.cfg.eval_episodes)
        try:
            obs, _, _, finished = self.eval_copies.step(actions)
        except RuntimeError as err:
            raise RuntimeError(f"env {self.cfg.id!r} in evaluation at step {ev['k']}: {err}") from err
        ev["finished"] += finished
        ev["k"] += 1
        if self.eval_copies.over.all() or ev["k"] >= self.cfg.eval_max_steps:
            self._finish_eval()
        else:
            self._send_obs(obs, "eval", ev["k"], {"round": self.round})
        return True

    def _finish_eval(self) -> None:
        ev, self.evaluation = self.evaluation, None
        done = ev["finished"]
        team = np.array([f["team"] for f in done] or [np.nan])
        lengths = np.array([f["length"] for f in done] or [np.nan], dtype=float)
        per_agent = {f"mean_return/{a}": float(np.mean([f["returns"][a] for f in done] or [np.nan]))
                     for a in self.copies.agents}
        self.tell_eval(ev, team, lengths, len(done), per_agent)

    def on_stop(self) -> dict[str, Any]:
        for copies in (getattr(self, "copies", None), getattr(self, "eval_copies", None)):
            if copies is not None:
                copies.close()
        return {"env_steps": self.env_steps() if hasattr(self, "step") else 0,
                "episodes": getattr(self, "episodes", 0)}
