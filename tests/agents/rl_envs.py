"""Tiny gymnasium environments for the RL tests, plugged in by ``tests.agents.rl_envs:Class``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    """Walk right along a corridor of ``length`` cells: action 1 steps right (reward 1), action 0 stays
    (reward 0); the episode ends at the far end, or is truncated after 2 x ``length`` steps."""

    action_space = gym.spaces.Discrete(2)
    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)

    def __init__(self, length: int = 5) -> None:
        self.length = length

    def _obs(self) -> np.ndarray:
        return np.array([self.pos / self.length], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.pos, self.t = 0, 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        moved = int(action) == 1
        self.pos += moved
        return self._obs(), float(moved), self.pos >= self.length, self.t >= 2 * self.length, {}


class Reach(gym.Env):
    """A Box action: reward -|a - 0.5| per step, 4 steps per episode."""

    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return np.full(2, self.t / 4, np.float32), -abs(float(action[0]) - 0.5), self.t >= 4, False, {}


class Fragile(Corridor):
    """A Corridor that raises on its third step."""

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.t >= 2:
            raise OSError("the corridor collapsed")
        return super().step(action)
