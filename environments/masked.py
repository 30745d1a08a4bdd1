"""Partially observed control: an env whose observation keeps only some of its components.

Why: with the velocities removed from CartPole's observation (cart position and pole angle are left) no
single observation tells the policy where the system is going, so a policy needs memory. The hierarchy
recipes (``runs/cartpole-masked-multiscale-*.toml``) give it memory through a slow recurrent agent.

``"dnilab/CartPoleNoVel-v1"`` is CartPole-v1 (its 500-step limit included) observing ``[x, theta]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["MaskObservation", "masked"]


class MaskObservation(gym.ObservationWrapper):
    """Keep the components ``keep`` (indices into a flat Box observation), in that order."""

    def __init__(self, env: gym.Env, keep: Sequence[int]) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"MaskObservation needs a flat Box observation, got {space}")
        self.keep = np.asarray(list(keep), dtype=np.int64)
        if not len(self.keep) or self.keep.min() < 0 or self.keep.max() >= space.shape[0]:
            raise ValueError(f"keep: indices {list(keep)} must be within the {space.shape[0]} components")
        self.observation_space = gym.spaces.Box(space.low[self.keep], space.high[self.keep], dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.keep]


def masked(env_id: str = "CartPole-v1", keep: Sequence[int] = (0, 2), **kwargs: Any) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)`` observing only the components ``keep`` (CartPole: x and theta)."""
    return MaskObservation(gym.make(env_id, **kwargs), keep)
