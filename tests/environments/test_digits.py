"""DigitStream: gymnasium compliance, tick protocol, targets against brute force, reproducibility."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from environments import DigitStream

from . import fake_mnist


def brute_force(name: str, window: list[int]) -> int:
    if name == "count_odd":
        return sum(d % 2 == 1 for d in window)
    if name == "sum_mod_10":
        return sum(window) % 10
    if name == "last_equals_first":
        return int(window[-1] == window[0])
    raise AssertionError(name)


def test_check_env() -> None:
    env = DigitStream(k=3, batch_size=5, data=fake_mnist())
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize(
    "target,k,n_classes",
    [("count_odd", 4, 5), ("sum_mod_10", 3, 10), ("last_equals_first", 2, 2), ("count_odd", 1, 2)],
)
def test_targets_and_ticks_match_brute_force(target: str, k: int, n_classes: int) -> None:
    data = fake_mnist()
    x, y = data["train"]
    env = DigitStream(k=k, batch_size=6, target=target, episode_length=5 * k, data=data)
    assert env.n_classes == n_classes and env.action_space.nvec.tolist() == [n_classes] * 6
    obs, info = env.reset(seed=7)
    history: list[np.ndarray] = []
    for t in range(5 * k):
        # every obs row is an image of the reported digit
        rows = [np.flatnonzero((x == obs[b]).all(axis=1)) for b in range(6)]
        assert all(len(r) and (y[r] == info["digit"][b]).all() for b, r in enumerate(rows))
        history.append(info["digit"])
        assert info["t"] == t and info["tick"] == (t % k == k - 1)
        if info["tick"]:
            expected = [brute_force(target, [int(h[b]) for h in history[-k:]]) for b in range(6)]
            assert info["target"].tolist() == expected
            assert all(0 <= e < n_classes for e in expected)
        else:
            assert (info["target"] == -1).all()
        assert info["target"].dtype == np.int64 and info["digit"].dtype == np.int64
        if t < 5 * k - 1:
            obs, reward, terminated, truncated, info = env.step(None)
            assert not terminated and truncated == (t + 1 == 5 * k - 1)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(None)


def test_reproducible_by_seed() -> None:
    def digits(seed: int) -> np.ndarray:
        env = DigitStream(k=2, batch_size=4, data=fake_mnist())
        out = [env.reset(seed=seed)[1]["digit"]]
        out += [env.step(None)[4]["digit"] for _ in range(6)]
        return np.stack(out)

    assert np.array_equal(digits(1), digits(1))
    assert not np.array_equal(digits(1), digits(2))


def test_reward_counts_correct_predictions_at_ticks() -> None:
    env = DigitStream(k=2, batch_size=4, data=fake_mnist())
    _, info = env.reset(seed=0)
    assert env.step(np.zeros(4, np.int64))[1] == 0.0  # t=0 is not a tick
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step(None)
    assert info["tick"]
    assert env.step(info["target"])[1] == 1.0
    assert env.step(np.zeros(4, np.int64))[1] == 0.0  # previous step was not a tick


def test_defaults_errors_and_registered_id() -> None:
    env = gym.make("dnilab/DigitStream-v0", data=fake_mnist(), flatten=False)
    assert env.unwrapped.episode_length == 256 and env.unwrapped.batch_size == 64
    obs, info = env.reset(seed=0)
    assert obs.shape == (64, 1, 28, 28) and obs.dtype == np.float32 and info["tick"] is False
    with pytest.raises(ValueError, match="count_even"):
        DigitStream(target="count_even", data=fake_mnist())
