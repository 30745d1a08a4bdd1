"""make(): registered ids, plug-in "module:Class" paths, and errors that name the spec."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from environments import DigitStream, MnistStream, make

from . import fake_mnist


class TinyEnv(gym.Env):
    """A plug-in environment as a user would write one."""

    observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, size: int = 2) -> None:
        self.size = size

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple:
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action: Any) -> tuple:
        return np.zeros(2, np.float32), 0.0, True, False, {}


NOT_AN_ENV = 42


def test_registered_ids() -> None:
    env = make("dnilab/MNIST-v0", split="test", batch_size=7, data=fake_mnist())
    assert isinstance(env.unwrapped, MnistStream) and env.unwrapped.num_batches == 4
    env = make("dnilab/DigitStream-v0", k=2, batch_size=3, data=fake_mnist())
    assert isinstance(env.unwrapped, DigitStream) and env.reset(seed=0)[0].shape == (3, 784)


def test_module_class_path() -> None:
    env = make(f"{__name__}:TinyEnv", size=5)
    assert isinstance(env, TinyEnv) and env.size == 5
    env = make("environments.mnist:MnistStream", split="valid", batch_size=4, data=fake_mnist())
    assert isinstance(env, MnistStream)


@pytest.mark.parametrize(
    "spec,match",
    [
        ("dnilab/NoSuch-v0", "not a registered gymnasium id"),
        ("no_such_pkg.mod:Env", "cannot import module 'no_such_pkg.mod'"),
        (f"{__name__}:Missing", "has no attribute 'Missing'"),
        (f"{__name__}:NOT_AN_ENV", "not a gymnasium.Env"),
        (":TinyEnv", "package.module:Class"),
        ("", "non-empty"),
    ],
)
def test_errors_name_the_spec(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as err:
        make(spec)
    assert repr(spec) in str(err.value)
