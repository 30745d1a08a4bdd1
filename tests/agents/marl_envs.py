"""A tiny PettingZoo Parallel env for the multi-agent tests, plugged in by ``tests.agents.marl_envs:Signal``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv


class Signal(ParallelEnv):
    """A speaker sees a goal bit (obs ``[goal]``); the listener sees the time and, as the env's own channel, the
    speaker's last action (obs ``[t / length, last speaker action]``). Both get reward 1 when the listener's action
    equals the goal. Episodes are truncated after ``length`` steps; with ``leave_at`` > 0 the speaker terminates
    after that many steps and leaves while the listener goes on; with ``fail_at`` > 0 the env raises then."""

    metadata = {"name": "signal_v0"}
    possible_agents = ["speaker", "listener"]

    def __init__(self, length: int = 4, leave_at: int = 0, fail_at: int = 0) -> None:
        self.length, self.leave_at, self.fail_at = length, leave_at, fail_at
        self.rng = np.random.default_rng(0)
        self.agents: list[str] = []

    def observation_space(self, agent: str) -> gym.spaces.Box:
        return gym.spaces.Box(0.0, 1.0, (1,) if agent == "speaker" else (2,), np.float32)

    def action_space(self, agent: str) -> gym.spaces.Discrete:
        return gym.spaces.Discrete(2)

    def _obs(self, agent: str) -> np.ndarray:
        if agent == "speaker":
            return np.array([self.goal], np.float32)
        return np.array([self.t / self.length, self.said], np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.goal, self.t, self.said = int(self.rng.integers(2)), 0, 0
        self.agents = list(self.possible_agents)
        return {a: self._obs(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        self.t += 1
        if self.fail_at and self.t >= self.fail_at:
            raise OSError("the line went dead")
        if set(actions) != set(self.agents):
            raise KeyError(f"actions for {sorted(actions)}, agents are {self.agents}")
        self.said = int(actions.get("speaker", 0))
        r = float(actions["listener"] == self.goal)
        rewards = {a: r for a in self.agents}
        term = {a: bool(a == "speaker" and self.t == self.leave_at) for a in self.agents}
        trunc = {a: self.t >= self.length for a in self.agents}
        obs = {a: self._obs(a) for a in self.agents}
        self.agents = [a for a in self.agents if not (term[a] or trunc[a])]
        return obs, rewards, term, trunc, {a: {} for a in obs}
