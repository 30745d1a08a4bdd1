"""MnistStream: gymnasium compliance, the batch protocol, reproducibility, full coverage of finite splits."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from environments import MnistStream

from . import fake_mnist


@pytest.mark.parametrize("flatten", [True, False])
def test_check_env_train(flatten: bool) -> None:
    env = MnistStream("train", batch_size=8, flatten=flatten, data=fake_mnist())
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert obs.shape == ((8, 784) if flatten else (8, 1, 28, 28)) and obs.dtype == np.float32
    assert info["target"].shape == (8,) and info["target"].dtype == np.int64
    assert env.num_batches is None


def run(env: MnistStream, seed: int, steps: int) -> list[np.ndarray]:
    obs, info = env.reset(seed=seed)
    out = [info["indices"]]
    for _ in range(steps):
        obs, _, term, trunc, info = env.step(None)
        assert not term and not trunc
        out.append(info["indices"])
    return out


def test_train_is_reproducible_full_batches_and_reshuffled() -> None:
    data = fake_mnist(n_train=40)
    a, b = MnistStream("train", 16, data=data), MnistStream("train", 16, data=data)
    ra, rb = run(a, 3, 9), run(b, 3, 9)
    assert all(np.array_equal(x, y) for x, y in zip(ra, rb))
    assert not all(np.array_equal(x, y) for x, y in zip(ra, run(b, 4, 9)))
    assert all(len(i) == 16 for i in ra)  # 40 examples: 2 full batches per epoch, remainder skipped
    epochs = [np.concatenate(ra[i : i + 2]) for i in range(0, 10, 2)]
    assert all(len(np.unique(e)) == 32 for e in epochs)  # no repeats inside an epoch
    assert not np.array_equal(epochs[0], epochs[1])  # each epoch reshuffled


def test_obs_and_targets_match_the_data() -> None:
    data = fake_mnist()
    env = MnistStream("train", 8, flatten=False, data=data)
    obs, info = env.reset(seed=1)
    x, y = data["train"]
    np.testing.assert_array_equal(obs.reshape(8, 784), x[info["indices"]])
    np.testing.assert_array_equal(info["target"], y[info["indices"]])


@pytest.mark.parametrize("split,batch_size", [("test", 5), ("test", 23), ("valid", 4), ("test", 64)])
def test_finite_split_covers_every_example_once(split: str, batch_size: int) -> None:
    data = fake_mnist(n_valid=12, n_test=23)
    x, y = data[split]
    env = MnistStream(split, batch_size, data=data)
    assert env.num_batches == -(-len(x) // batch_size)
    obs, info = env.reset(seed=0)
    seen, sizes, terminated, steps = [], [], False, 0
    while not terminated:
        np.testing.assert_array_equal(obs, x[info["indices"]])
        np.testing.assert_array_equal(info["target"], y[info["indices"]])
        seen.append(info["indices"])
        sizes.append(len(obs))
        obs, reward, terminated, truncated, info = env.step(info["target"])  # perfect predictions
        assert reward == 1.0 and not truncated
        steps += 1
    assert steps == env.num_batches and obs.shape == (0, 784) and info["target"].shape == (0,)
    assert np.array_equal(np.concatenate(seen), np.arange(len(x)))  # ordered, each exactly once
    assert all(s == batch_size for s in sizes[:-1]) and 0 < sizes[-1] <= batch_size
    with pytest.raises(RuntimeError, match="reset"):
        env.step(None)
    _, info = env.reset()
    assert info["indices"][0] == 0  # a new pass


def test_reward_and_action_checks() -> None:
    env = MnistStream("train", 10, data=fake_mnist())
    _, info = env.reset(seed=0)
    pred = info["target"].copy()
    pred[:3] = (pred[:3] + 1) % 10
    _, reward, *_ = env.step(pred)
    assert reward == pytest.approx(0.7)
    assert env.step(None)[1] == 0.0
    with pytest.raises(ValueError, match="10 labels"):
        env.step(np.zeros(3, np.int64))


def test_limit_and_argument_errors() -> None:
    data = fake_mnist()
    assert MnistStream("test", 4, data=data, limit=9).num_batches == 3
    with pytest.raises(ValueError, match="split"):
        MnistStream("validation", data=data)
    with pytest.raises(ValueError, match="batch_size"):
        MnistStream("train", batch_size=64, data=data)  # only 40 training examples
    with pytest.raises(ValueError, match="no 'test'"):
        MnistStream("test", data={"train": data["train"]})


def test_registered_id() -> None:
    env = gym.make("dnilab/MNIST-v0", split="valid", batch_size=6, data=fake_mnist())
    obs, info = env.reset(seed=0)
    assert obs.shape == (6, 784) and env.unwrapped.num_batches == 2


def test_quadrants_are_the_four_quarters() -> None:
    data = fake_mnist()
    env = MnistStream("train", 8, data=data, quadrants=True)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=1)
    assert obs.shape == (8, 4, 196) and obs.dtype == np.float32
    img = data["train"][0][info["indices"]].reshape(8, 28, 28)
    quarters = [img[:, :14, :14], img[:, :14, 14:], img[:, 14:, :14], img[:, 14:, 14:]]
    for i, q in enumerate(quarters):
        np.testing.assert_array_equal(obs[:, i], q.reshape(8, 196))
