"""Synthetic environments for benchmarks: batches that cost nothing to make, so data loading is not timed."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class RandomBatches(gym.Env):
    """A labelled stream of random float32 batches ``[batch_size, features]``, cycling a small fixed pool.

    ``split="train"`` never ends; any other split is one pass of ``eval_batches`` batches, then
    ``terminated`` (with an empty batch), like the supervised streams of ``environments``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, batch_size: int = 8, features: int = 16, classes: int = 10, split: str = "train",
                 eval_batches: int = 1, pool: int = 8, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.train = split == "train"
        self.eval_batches = eval_batches
        self._x = rng.standard_normal((pool, batch_size, features), dtype=np.float32)
        self._y = rng.integers(0, classes, (pool, batch_size), dtype=np.int64)
        self._i = 0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (batch_size, features), np.float32)
        self.action_space = gym.spaces.MultiDiscrete(np.full(batch_size, classes, dtype=np.int64))

    def _serve(self) -> tuple[np.ndarray, dict[str, Any]]:
        k = self._i % len(self._x)
        return self._x[k], {"target": self._y[k]}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._i = 0
        return self._serve()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._i += 1
        if not self.train and self._i >= self.eval_batches:
            empty = np.zeros((0, self._x.shape[2]), np.float32)
            return empty, 0.0, True, False, {"target": np.zeros(0, np.int64)}
        obs, info = self._serve()
        return obs, 0.0, False, False, info
