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


class ShapesImages(gym.Env):
    """Generated labelled images of CIFAR's shape ``[3, 32, 32]``: each class is a fixed smooth random pattern,
    each example that pattern shifted by up to ``shift`` pixels (with wrap-around), faded by a random contrast
    and buried in Gaussian noise. Learnable by a conv net over hundreds of steps, with no download.

    The patterns depend on ``seed`` only, so every split shares them; the examples of a split are drawn once
    (seed and split), then served like ``MnistStream``: train reshuffles full batches forever, any other split
    is one ordered pass (the last batch may be smaller), then ``terminated`` with an empty batch."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, batch_size: int = 32, split: str = "train", examples: int | None = None, classes: int = 10,
                 shift: int = 4, noise: float = 1.0, seed: int = 0, limit: int | None = None) -> None:
        self.train = split == "train"
        n = examples or (8192 if self.train else 1024)
        n = min(n, limit) if limit else n
        if n < batch_size and self.train:
            raise ValueError(f"train needs at least batch_size={batch_size} examples, has {n}")
        rng = np.random.default_rng(seed)
        coarse = rng.standard_normal((classes, 3, 8, 8)).astype(np.float32)
        patterns = np.kron(coarse, np.ones((1, 1, 4, 4), np.float32))  # [classes, 3, 32, 32], blocks of 4x4
        data = np.random.default_rng([seed, 1 if self.train else 2])
        self._y = data.integers(0, classes, n).astype(np.int64)
        x = patterns[self._y]
        for i, (dy, dx) in enumerate(data.integers(-shift, shift + 1, (n, 2))):
            x[i] = np.roll(x[i], (int(dy), int(dx)), axis=(1, 2))
        x *= data.uniform(0.3, 1.0, (n, 1, 1, 1)).astype(np.float32)
        x += noise * data.standard_normal(x.shape, dtype=np.float32)
        self._x = x
        self.batch_size = batch_size
        self._rng = np.random.default_rng([seed, 3])
        self._order = np.arange(n)
        self._i = 0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (batch_size, 3, 32, 32), np.float32)
        self.action_space = gym.spaces.MultiDiscrete(np.full(batch_size, classes, dtype=np.int64))

    def _serve(self) -> tuple[np.ndarray, dict[str, Any]]:
        idx = self._order[self._i * self.batch_size:(self._i + 1) * self.batch_size]
        return self._x[idx], {"target": self._y[idx]}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng([seed, 3])
        self._i = 0
        if self.train:
            self._order = self._rng.permutation(len(self._x))
        return self._serve()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._i += 1
        if self.train and (self._i + 1) * self.batch_size > len(self._x):  # full batches only: next epoch
            self._i = 0
            self._order = self._rng.permutation(len(self._x))
        if not self.train and self._i * self.batch_size >= len(self._x):
            empty = np.zeros((0, *self._x.shape[1:]), np.float32)
            return empty, 0.0, True, False, {"target": np.zeros(0, np.int64)}
        obs, info = self._serve()
        return obs, 0.0, False, False, info
