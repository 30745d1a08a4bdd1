"""The environment node of an RL system: N copies of a gymnasium env stepped on the policy head's actions.

Any registered gymnasium id or ``package.module:Class`` runs as a ``SyncVectorEnv`` (N copies, same-step
autoreset: a finished copy's next observation is its reset) inside ``RecordEpisodeStatistics``.
Per vector step ``s`` (see ``agents.rl_policy`` for the agents' side):

- ``input(obs, s)`` ``[N, D]`` to the first agent of the policy chain;
- the head answers ``act(action, s)`` on edge ``head->env`` (Discrete: int64 ``[N]``; Box: float32
  ``[N, *shape]``, clipped to the bounds here); a wrong shape, dtype, value or a NaN is an error naming it;
- the env steps and sends ``label(s)`` = (action as float ``[N, A]``, reward ``[N]``, done ``[N]``) to the head
  and to senders whose M reads a context; finished episodes' returns and lengths go to the records.

The observation of step ``k * num_steps`` ends rollout ``k - 1`` (the head's bootstrap value) and starts
rollout ``k``: its action arrives after the update. At such a boundary, every ``eval_every`` env steps and
after the last rollout, the node evaluates: ``eval_episodes`` separate copies (seeded apart from training),
the policy's deterministic action, one episode each (phase ``eval``). The final evaluation's mean return,
the env steps, and the env steps at which the mean of the last ``window`` training returns first reached
``threshold`` are the run's ``eval``.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from pydantic import Field

from interfaces import Expectations, Kind, Message, TensorSpec

from .config import Strict
from .env_node import load_factory
from .node import Node

__all__ = ["RlEnvConfig", "RlEnvNode", "action_dim", "action_row", "agent_facts", "check_action", "make_vector_env",
           "space_facts"]

ENV = "env"
EVAL_SEED_OFFSET = 1_000_000  # evaluation copies never share a seed with training copies


class RlEnvConfig(Strict):
    """``[env]`` of an RL recipe."""

    id: str = Field(min_length=1, description="a registered gymnasium id or 'package.module:Class'")
    kwargs: dict[str, Any] = {}
    num_envs: int = Field(4, ge=1)
    threshold: float | None = None
    window: int = Field(20, ge=1, description="training episodes averaged for steps_to_threshold")
    eval_episodes: int = Field(20, ge=1)
    eval_max_steps: int = Field(10_000, ge=1, description="an evaluation stops after this many vector steps")


def make_vector_env(spec: str, kwargs: dict[str, Any], n: int, make: str = "environments:make") -> gym.vector.VectorEnv:
    """N copies of ``spec`` (same-step autoreset) with episode statistics."""
    factory = load_factory(make)
    venv = gym.vector.SyncVectorEnv([lambda: factory(spec, **kwargs) for _ in range(n)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    return gym.wrappers.vector.RecordEpisodeStatistics(venv)


def space_facts(venv: gym.vector.VectorEnv) -> dict[str, Any]:
    """What the agents need to know of one copy's spaces; ValueError for spaces the node cannot serve."""
    return agent_facts(venv.single_observation_space, venv.single_action_space)


def agent_facts(obs: gym.Space, act: gym.Space) -> dict[str, Any]:
    """``space_facts`` of one agent's observation and action spaces (a PettingZoo env has a pair per agent)."""
    if not isinstance(obs, gym.spaces.Box):
        raise ValueError(f"observation space {obs} is not supported (a Box is)")
    if isinstance(act, gym.spaces.Discrete):
        return {"obs_dim": int(np.prod(obs.shape)), "continuous": False, "action_dim": int(act.n)}
    if isinstance(act, gym.spaces.Box):
        return {"obs_dim": int(np.prod(obs.shape)), "continuous": True, "action_dim": int(np.prod(act.shape))}
    raise ValueError(f"action space {act} is not supported (Discrete and Box are)")


def action_dim(space: gym.Space) -> int:
    return int(space.n) if isinstance(space, gym.spaces.Discrete) else int(np.prod(space.shape))


def check_action(space: gym.Space, action: torch.Tensor, n: int, where: str) -> np.ndarray:
    """The head's action for ``n`` copies as the env takes it; ValueError naming what is wrong otherwise."""
    if isinstance(space, gym.spaces.Discrete):
        if tuple(action.shape) != (n,):
            raise ValueError(f"{where}: action of shape {list(action.shape)}, expected [{n}] ({space} x {n} copies)")
        a = action.numpy()
        bad = (a < space.start) | (a >= space.start + space.n)
        if bad.any():
            raise ValueError(f"{where}: action {a[bad][0]} of copy {int(np.argmax(bad))} is outside {space}")
        return a.astype(np.int64)
    shape = (n, *space.shape)
    if tuple(action.shape) != shape:
        raise ValueError(f"{where}: action of shape {list(action.shape)}, expected {list(shape)} "
                         f"({space} x {n} copies)")
    a = action.numpy().astype(space.dtype)
    if not np.isfinite(a).all():
        copy = int(np.argmax(~np.isfinite(a).reshape(n, -1).all(1)))
        raise ValueError(f"{where}: action of copy {copy} is not finite ({a[copy].tolist()})")
    return np.clip(a, space.low, space.high)


def action_row(space: gym.Space, a: np.ndarray) -> torch.Tensor:
    """An action as a float context row: one-hot for Discrete, the vector for Box. [N, A]"""
    if isinstance(space, gym.spaces.Discrete):
        return torch.nn.functional.one_hot(torch.as_tensor(a - space.start), int(space.n)).float()
    return torch.as_tensor(a, dtype=torch.float32).reshape(len(a), -1)


class EpisodeEnvNode(Node):
    """What the RL and the multi-agent environment nodes share: their episode counters and their eval report."""

    def start_counters(self) -> None:
        """The training and evaluation counters (what ``tell_eval`` reports), from zero."""
        self.step = 0
        self.done = False
        self.recent: deque[float] = deque(maxlen=self.cfg.window)  # recent training episodes' returns
        self.episodes = 0
        self.steps_to_threshold: int | None = None
        self.next_eval = self.eval_every
        self.evaluation: dict[str, Any] | None = None  # the evaluation in progress, if any
        self.round = 0
        self.t_start = time.monotonic()
        self.t_report, self.s_report = self.t_start, 0

    def env_steps(self) -> int:
        return self.step * self.n

    def tell_eval(self, ev: dict[str, Any], returns: np.ndarray, lengths: np.ndarray, episodes: int,
                  extra: dict[str, float] | None = None) -> None:
        """Tell the supervisor one evaluation's returns, [episodes] each (the final one completes the run)."""
        self.round += 1
        result: dict[str, Any] = {
            "final": ev["final"], "round": self.round - 1, "at": self.env_steps(),
            "mean_return": float(returns.mean()), "std_return": float(returns.std()),
            "min_return": float(returns.min()), "mean_length": float(lengths.mean()), "episodes": episodes,
            "env_steps": self.env_steps(), "train_return_mean": float(np.mean(self.recent)) if self.recent else None,
            "train_episodes": self.episodes, "wall_s": time.monotonic() - self.t_start,
            "eval_s": time.monotonic() - ev["t0"], **(extra or {})}
        if self.cfg.threshold is not None:
            result.update(threshold=self.cfg.threshold, steps_to_threshold=self.steps_to_threshold)
        self.rt.tell("eval", step=self.env_steps(), **result)
        if ev["final"]:
            self.done = True
            self.rt.tell("complete", step=self.env_steps(), steps=self.env_steps())


class RlEnvNode(EpisodeEnvNode):
    """Steps the vector env on the head's actions, reports episodes, runs the deterministic evaluations."""

    name = ENV

    def __init__(self, env: dict[str, Any], first: str, head: str, context: list[str], steps: int,
                 num_steps: int, seed: int = 0, eval_every: int = 0, metrics_every: int = 50,
                 make: str = "environments:make") -> None:
        self.cfg = RlEnvConfig(**env)
        self.first, self.head, self.context = first, head, list(context)
        self.n = self.cfg.num_envs
        self.num_steps = num_steps
        self.rollouts = steps // (num_steps * self.n)
        self.end = self.rollouts * num_steps  # vector steps; the observation of step `end` is the last one sent
        self.seed = seed
        self.eval_every = eval_every
        self.metrics_every = metrics_every
        self.make = make

    def expectations(self) -> Expectations:
        expect = Expectations()
        venv = make_vector_env(self.cfg.id, self.cfg.kwargs, 1, self.make)
        space = venv.single_action_space
        venv.close()
        spec = TensorSpec(torch.int64, (None,)) if isinstance(space, gym.spaces.Discrete) else \
            TensorSpec(torch.float32, (None, *space.shape))
        expect.allow(Kind.ACT, f"{self.head}->{ENV}", self.head, [spec])
        return expect

    def peers(self) -> list[str]:
        return sorted({self.first, self.head, *self.context})

    def start(self, rt) -> None:  # noqa: ANN001 - NodeRuntime
        super().start(rt)
        self.venv = make_vector_env(self.cfg.id, self.cfg.kwargs, self.n, self.make)
        self.space = self.venv.single_action_space
        self.eval_env = make_vector_env(self.cfg.id, self.cfg.kwargs, self.cfg.eval_episodes, self.make)
        self.actions: dict[tuple[str, int], torch.Tensor] = {}  # (phase, step) -> action
        self.start_counters()
        obs, _ = self.venv.reset(seed=self.seed)
        self._send_obs(obs)

    # -- messages ------------------------------------------------------------------------------------
    def on_message(self, msg: Message) -> None:
        phase = msg.meta.get("phase", "act")
        self.actions[(phase, msg.step)] = msg.tensors[0]

    def _send_obs(self, obs: np.ndarray, phase: str = "act", step: int | None = None,
                  meta: dict[str, Any] | None = None) -> None:
        x = torch.as_tensor(np.ascontiguousarray(obs), dtype=torch.float32).reshape(len(obs), -1)
        s = self.step if step is None else step
        self.rt.send(self.first, Message(Kind.INPUT, ENV, f"{ENV}->{self.first}", s, [x],
                                         {"phase": phase, **(meta or {})}))

    # -- work ------------------------------------------------------------------------------------------
    def work(self) -> bool:
        if self.done:
            return False
        if self.evaluation is not None:
            return self._eval_tick()
        key = ("act", self.step)
        if key not in self.actions:
            return False
        boundary = self.step % self.num_steps == 0 and self.step > 0
        if self.step >= self.end:
            self._start_eval(final=True)
            return True
        if boundary and self.eval_every and self.env_steps() >= self.next_eval:
            self.next_eval += self.eval_every
            self._start_eval(final=False)
            return True
        action = self.actions.pop(key)
        self._step_env(action)
        return True

    def _step_env(self, action: torch.Tensor) -> None:
        where = f"action from {self.head!r} at step {self.step}"
        a = check_action(self.space, action, self.n, where)
        try:
            obs, reward, terminated, truncated, info = self.venv.step(a)
        except Exception as err:
            raise RuntimeError(f"env {self.cfg.id!r} failed at step {self.step} on action {a.tolist()}: "
                               f"{type(err).__name__}: {err}") from err
        done = np.logical_or(terminated, truncated)
        label = [action_row(self.space, a), torch.as_tensor(reward, dtype=torch.float32),
                 torch.as_tensor(done, dtype=torch.float32)]
        for peer in sorted({self.head, *self.context}):
            self.rt.send(peer, Message(Kind.LABEL, ENV, f"{ENV}->{peer}", self.step, label))
        self.step += 1
        if "episode" in info:
            self._episodes(info)
        if self.step % self.metrics_every == 0:
            now = time.monotonic()
            rate = (self.env_steps() - self.s_report) / max(now - self.t_report, 1e-9)
            self.rt.tell("metrics", step=self.env_steps(), steps=self.env_steps(), wall_s=now - self.t_start,
                         env_steps_per_s=rate, batches_per_s=rate)
            self.t_report, self.s_report = now, self.env_steps()
        self._send_obs(obs)

    def _episodes(self, info: dict[str, Any]) -> None:
        mask = info["_episode"]
        returns = [float(r) for r in info["episode"]["r"][mask]]
        lengths = [int(n) for n in info["episode"]["l"][mask]]
        for r in returns:
            self.episodes += 1
            self.recent.append(r)
            if (self.steps_to_threshold is None and self.cfg.threshold is not None
                    and len(self.recent) == self.recent.maxlen and np.mean(self.recent) >= self.cfg.threshold):
                self.steps_to_threshold = self.env_steps()
        self.rt.tell("metrics", step=self.env_steps(), env_steps=self.env_steps(),
                     wall_s=time.monotonic() - self.t_start, episode_return=float(np.mean(returns)),
                     episode_length=float(np.mean(lengths)), returns=returns, lengths=lengths,
                     return_mean=float(np.mean(self.recent)), episodes=self.episodes)

    # -- evaluation ------------------------------------------------------------------------------------
    def _start_eval(self, final: bool) -> None:
        obs, _ = self.eval_env.reset(seed=self.seed + EVAL_SEED_OFFSET)
        n = self.cfg.eval_episodes
        self.evaluation = {"final": final, "k": 0, "returns": np.zeros(n), "lengths": np.zeros(n, dtype=np.int64),
                           "finished": np.zeros(n, dtype=bool), "t0": time.monotonic()}
        self._send_obs(obs, "eval", 0, {"round": self.round})

    def _eval_tick(self) -> bool:
        ev = self.evaluation
        key = ("eval", ev["k"])
        if key not in self.actions:
            return False
        n = self.cfg.eval_episodes
        where = f"evaluation action from {self.head!r} at step {ev['k']}"
        a = check_action(self.space, self.actions.pop(key), n, where)
        try:
            obs, reward, terminated, truncated, _ = self.eval_env.step(a)
        except Exception as err:
            raise RuntimeError(f"env {self.cfg.id!r} failed in evaluation at step {ev['k']}: "
                               f"{type(err).__name__}: {err}") from err
        live = ~ev["finished"]
        ev["returns"][live] += reward[live]
        ev["lengths"][live] += 1
        ev["finished"] |= np.logical_or(terminated, truncated)
        ev["k"] += 1
        if ev["finished"].all() or ev["k"] >= self.cfg.eval_max_steps:
            self._finish_eval()
        else:
            self._send_obs(obs, "eval", ev["k"], {"round": self.round})
        return True

    def _finish_eval(self) -> None:
        ev, self.evaluation = self.evaluation, None
        self.tell_eval(ev, ev["returns"], ev["lengths"], int(ev["finished"].sum()))

    def on_stop(self) -> dict[str, Any]:
        for env in (getattr(self, "venv", None), getattr(self, "eval_env", None)):
            if env is not None:
                env.close()
        return {"env_steps": self.env_steps() if hasattr(self, "step") else 0,
                "episodes": getattr(self, "episodes", 0)}
