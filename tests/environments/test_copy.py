"""Copy / Repeat Copy envs: layout (fixed and per-sequence lengths), protocol, curriculum hooks, bits per sequence."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from environments.copy import Copy, RepeatCopy, bits_per_sequence


def _episode(env) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[bool]]:
    obs, info = env.reset(seed=3)
    xs, ys, ms, terms = [obs], [info["target"]], [info["mask"]], [False]
    while not terms[-1]:
        obs, r, term, trunc, info = env.step(None)
        assert r == 0.0 and not trunc
        xs.append(obs)
        ys.append(info["target"])
        ms.append(info["mask"])
        terms.append(term)
    return np.stack(xs), np.stack(ys), np.stack(ms), terms


@pytest.mark.parametrize("env", [Copy(batch_size=3, length=4), RepeatCopy(batch_size=2, length=2, repeats=3),
                                 Copy(batch_size=3, length=4, lengths="level")])
def test_check_env(env) -> None:
    check_env(env, skip_render_check=True)


def test_copy_layout() -> None:
    env = Copy(batch_size=5, length=4, bits=8, lengths="level")
    xs, ys, ms, terms = _episode(env)
    n = 4
    assert xs.shape == (2 * n + 1, 5, 9) and ys.shape == (2 * n + 1, 5, 8) and xs.dtype == np.float32
    assert terms == [False] * (2 * n) + [True]
    np.testing.assert_array_equal(xs[n + 1 :], 0)  # no input while answering
    np.testing.assert_array_equal(xs[:n, :, 8], 0)
    np.testing.assert_array_equal(xs[n, :, :8], 0)
    np.testing.assert_array_equal(xs[n, :, 8], 1)  # delimiter
    np.testing.assert_array_equal(ys[n + 1 :], xs[:n, :, :8])  # copy
    assert ms.dtype == bool and ms.shape == (2 * n + 1, 5)
    np.testing.assert_array_equal(ms[:, 0], [False] * (n + 1) + [True] * n)
    with pytest.raises(RuntimeError):
        env.step(None)


def test_repeat_copy_layout() -> None:
    env = RepeatCopy(batch_size=2, length=3, repeats=2, bits=4, repeat_norm=10.0, lengths="level")
    xs, ys, ms, terms = _episode(env)
    n, r = 3, 2
    total = n + 1 + n * r + 1
    assert xs.shape == (total, 2, 6) and ys.shape == (total, 2, 5) and len(terms) == total
    assert xs[n, 0, 4] == 1 and xs[n, 0, 5] == pytest.approx(0.2)
    seq = xs[:n, :, :4]
    np.testing.assert_array_equal(ys[n + 1 : n + 1 + n, :, :4], seq)
    np.testing.assert_array_equal(ys[n + 1 + n : n + 1 + 2 * n, :, :4], seq)
    np.testing.assert_array_equal(ys[:-1, :, 4], 0)
    np.testing.assert_array_equal(ys[-1], [[0, 0, 0, 0, 1]] * 2)  # end marker only
    np.testing.assert_array_equal(ms[:, 1], [False] * (n + 1) + [True] * (n * r + 1))


def test_length_settable_between_episodes_and_reproducible() -> None:
    env = Copy(batch_size=2, length=2, lengths="level")
    env.set_length(5)
    assert env.length == 5
    assert _episode(env)[0].shape[0] == 11
    obs, _ = env.reset(options={"length": 3})
    assert env.episode_length == 7
    rep = RepeatCopy(batch_size=2, lengths="level")
    rep.reset(options={"length": 2, "repeats": 4})
    assert rep.episode_length == 2 + 1 + 8 + 1
    for lengths in ("level", "uniform"):
        a, b = (_episode(Copy(batch_size=2, length=3, lengths=lengths)) for _ in range(2))
        np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="length"):
        env.set_length(0)


def _copy_lengths(xs: np.ndarray, bits: int) -> np.ndarray:
    """Each sequence's n, read off its delimiter step."""
    return np.argmax(xs[:, :, bits], axis=0)


def test_copy_uniform_lengths_each_sequence_its_own_layout() -> None:
    env = Copy(batch_size=64, length=5, bits=4)
    assert env.lengths == "uniform"  # the NTM paper's reading is the default
    xs, ys, ms, terms = _episode(env)
    ns = _copy_lengths(xs, 4)
    assert set(ns.tolist()) == {1, 2, 3, 4, 5}  # 64 draws from 1..5 hit every length
    assert xs.shape[0] == 2 * ns.max() + 1 and terms[-1] and not any(terms[:-1])
    assert ms.shape == (xs.shape[0], 64)
    for b, n in enumerate(ns.tolist()):
        assert xs[:, b, 4].sum() == 1  # one delimiter
        np.testing.assert_array_equal(xs[n + 1 :, b], 0)  # no input while answering, nor in the padding
        np.testing.assert_array_equal(ys[n + 1 : 2 * n + 1, b], xs[:n, b, :4])  # copy
        np.testing.assert_array_equal(ys[2 * n + 1 :, b], 0)
        np.testing.assert_array_equal(ms[:, b], [False] * (n + 1) + [True] * n + [False] * (xs.shape[0] - 2 * n - 1))


def test_repeat_copy_uniform_lengths_and_repeats() -> None:
    env = RepeatCopy(batch_size=64, length=3, repeats=4, bits=4, repeat_norm=10.0)
    xs, ys, ms, _ = _episode(env)
    ns = _copy_lengths(xs, 4)
    rs = np.rint(xs[ns, np.arange(64), 5] * 10).astype(int)
    assert set(ns.tolist()) == {1, 2, 3} and set(rs.tolist()) == {1, 2, 3, 4}
    assert xs.shape[0] == (ns + 1 + ns * rs + 1).max()
    for b, (n, r) in enumerate(zip(ns.tolist(), rs.tolist(), strict=True)):
        end = n + 1 + n * r
        np.testing.assert_array_equal(ys[n + 1 : end, b, :4], np.tile(xs[:n, b, :4], (r, 1)))
        np.testing.assert_array_equal(ys[:, b, 4], np.arange(xs.shape[0]) == end)  # end marker once
        np.testing.assert_array_equal(ms[:, b], (np.arange(xs.shape[0]) > n) & (np.arange(xs.shape[0]) <= end))


def test_level_lengths_all_equal_and_bad_lengths_rejected() -> None:
    xs, _, ms, _ = _episode(Copy(batch_size=8, length=4, bits=3, lengths="level"))
    assert (_copy_lengths(xs, 3) == 4).all() and (ms == ms[:, :1]).all()
    with pytest.raises(ValueError, match="lengths"):
        Copy(lengths="mixed")


def test_bits_per_sequence_known_values() -> None:
    t, b, n = 5, 3, 8
    mask = np.zeros((t, b), bool)
    mask[2:] = True
    tgt = np.random.default_rng(0).integers(0, 2, (t, b, n)).astype(np.float32)
    assert bits_per_sequence(np.zeros((t, b, n)), tgt, mask) == pytest.approx(3 * 8)  # 1 bit per bit
    perfect = np.where(tgt > 0, 30.0, -30.0)
    assert bits_per_sequence(perfect, tgt, mask) < 1e-9
    wrong = -perfect
    assert bits_per_sequence(wrong, tgt, mask) == pytest.approx(3 * 8 * 30 / np.log(2), rel=1e-6)


def test_registered_ids_make() -> None:
    assert {"dnilab/Copy-v0", "dnilab/RepeatCopy-v0", "dnilab/CharLM-v0"} <= set(gym.registry)
    env = gym.make("dnilab/RepeatCopy-v0", batch_size=2, length=2, repeats=2)
    obs, info = env.reset(seed=0)
    assert obs.shape == (2, 10) and info["target"].shape == (2, 9)
    env.unwrapped.set_length(3)
