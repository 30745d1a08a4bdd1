"""``DigitStream``: parallel streams of MNIST digits with a target every k steps.

Made for the multi-timescale experiment: a fast core sees one digit per step, a slow core must
report a property of the last ``k`` digits every ``k`` steps, so the information has to be carried
across the fast/slow boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from .mnist import split_arrays

__all__ = ["TARGETS", "DigitStream", "TargetFn"]


@dataclass(frozen=True)
class TargetFn:
    """A window rule: ``fn(digits [B, k]) -> int64 [B]`` with ``n_classes(k)`` possible values."""

    fn: Callable[[np.ndarray], np.ndarray]
    n_classes: Callable[[int], int]
    doc: str


TARGETS: dict[str, TargetFn] = {
    "count_odd": TargetFn(lambda w: (w % 2).sum(axis=1), lambda k: k + 1, "number of odd digits, 0..k"),
    "sum_mod_10": TargetFn(lambda w: w.sum(axis=1) % 10, lambda k: 10, "sum of the digits mod 10"),
    "last_equals_first": TargetFn(
        lambda w: (w[:, -1] == w[:, 0]).astype(np.int64), lambda k: 2, "1 if last digit == first digit"
    ),
}


class DigitStream(gym.Env):
    """``batch_size`` parallel streams; each step shows one random digit image per stream.

    - ``reset(seed=s)`` returns time step 0; each ``step`` returns the next time step.
      ``obs``: float32 ``[B, 784]`` (``[B, 1, 28, 28]`` with ``flatten=False``).
    - ``info["digit"]``: int64 ``[B]`` true digits; ``info["t"]``: the time step in the episode;
      ``info["tick"]``: True when ``t % k == k - 1``; ``info["target"]``: int64 ``[B]``, the target rule
      applied to digits ``t-k+1 .. t`` of each stream when ``tick``, else all ``-1`` (do not use).
    - The action is the predicted targets for the previous time step (or ``None``); reward = their
      accuracy when that step was a tick, else 0.0.
    - An episode has ``episode_length`` time steps (default ``64 * k``); the step returning time step
      ``episode_length - 1`` has ``truncated=True`` (its obs/target are still valid); then ``reset``.

    Digits are drawn uniformly with replacement from the split with the env's ``np_random``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        k: int = 4,
        batch_size: int = 64,
        split: str = "train",
        target: str = "count_odd",
        episode_length: int | None = None,
        flatten: bool = True,
        data: Mapping[str, Any] | None = None,
        limit: int | None = None,
        root: str | Path | None = None,
        render_mode: str | None = None,
    ) -> None:
        if k < 1 or batch_size < 1:
            raise ValueError(f"k and batch_size must be >= 1, got k={k}, batch_size={batch_size}")
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; choose one of {sorted(TARGETS)}")
        self.k, self.batch_size, self.target_name = int(k), int(batch_size), target
        self.episode_length = int(episode_length) if episode_length is not None else 64 * self.k
        if self.episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        self.render_mode = render_mode
        self._rule = TARGETS[target]
        self.n_classes = self._rule.n_classes(self.k)
        self._x, self._y = split_arrays(split, data, limit, Path(root) if root is not None else None)
        self._shape = (784,) if flatten else (1, 28, 28)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self.batch_size, *self._shape), np.float32)
        self.action_space = gym.spaces.MultiDiscrete(np.full(self.batch_size, self.n_classes, np.int64))
        self._window = np.zeros((self.batch_size, self.k), np.int64)
        self._t = -1
        self._target: np.ndarray | None = None

    def _emit(self) -> tuple[np.ndarray, dict[str, Any]]:
        idx = self.np_random.integers(0, len(self._x), size=self.batch_size)
        digit = self._y[idx]
        self._window[:, self._t % self.k] = digit  # slot t % k: the window is in order at a tick
        tick = self._t % self.k == self.k - 1
        target = self._rule.fn(self._window).astype(np.int64) if tick else np.full(self.batch_size, -1)
        self._target = target if tick else None
        obs = self._x[idx].reshape(self.batch_size, *self._shape)
        return obs, {"digit": digit, "tick": bool(tick), "target": target.astype(np.int64), "t": self._t}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = 0
        self._window[:] = 0
        return self._emit()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._t < 0 or self._t >= self.episode_length - 1:
            raise RuntimeError("call reset() before step() (and again after truncated=True)")
        reward = 0.0
        if action is not None and self._target is not None:
            pred = np.asarray(action).reshape(-1)
            if pred.shape != self._target.shape:
                raise ValueError(f"action must hold {self.batch_size} predictions, got {np.shape(action)}")
            reward = float(np.mean(pred == self._target))
        self._t += 1
        obs, info = self._emit()
        return obs, reward, False, self._t == self.episode_length - 1, info
