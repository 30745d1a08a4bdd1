"""Masked observations: CartPole without its velocities, registered so a recipe names it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from environments import MaskObservation, make


def test_cartpole_novel_observes_position_and_angle_only() -> None:
    env = make("dnilab/CartPoleNoVel-v1")
    full = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=3)
    ref, _ = full.reset(seed=3)
    assert env.observation_space.shape == (2,) and np.allclose(obs, ref[[0, 2]])
    for _ in range(5):
        obs, *_ = env.step(1)
        ref, *_ = full.step(1)
    assert np.allclose(obs, ref[[0, 2]])
    assert env.spec.max_episode_steps == 500


def test_bad_masks_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"keep: indices \[4\] must be within the 4 components"):
        MaskObservation(gym.make("CartPole-v1"), [4])
    with pytest.raises(ValueError, match="needs a flat Box observation"):
        MaskObservation(gym.make("FrozenLake-v1"), [0])
