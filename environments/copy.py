"""Copy and Repeat Copy (Graves et al. 2014, the Neural Turing Machine tasks) as batched time-step streams.

Why here: the DNI paper (Jaderberg et al. 2016, Sect. 3.1) measures how far back an RNN trained with
truncated BPTT can remember by the longest Copy / Repeat Copy sequence it solves under a curriculum.

Protocol (one env step = one time step of B sequences that share the current length N):

- ``reset(seed=..., options={"length": N, "repeats": R})`` -> ``(obs_0, info_0)``; ``step(action)`` ->
  ``(obs_t, 0.0, terminated, False, info_t)``. The action (predictions) is ignored and may be ``None``.
- The obs returned with ``terminated=True`` is the *last* time step of the episode and still counts;
  stepping again needs a ``reset()``.
- ``info["target"]``: float32 ``[B, n_out]``; ``info["mask"]``: bool ``[B]`` (all equal), True on the
  output phase, the only steps that count for the loss.
- ``set_length(n)`` / ``set_repeats(r)`` (or the ``options`` above) take effect at the next reset, for a
  curriculum.

Copy, channels ``n_in = bits + 1`` (last = delimiter): N input vectors, one delimiter step, then N output
steps with zero input whose targets are the N vectors. Episode length 2N + 1.

RepeatCopy, ``n_in = bits + 2`` (delimiter, repeat count R / ``repeat_norm``), ``n_out = bits + 1`` (last
= end marker): N input vectors, one delimiter step carrying R, then N·R output steps replaying the vectors
R times and one step with only the end marker set. Episode length N + 1 + N·R + 1.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["Copy", "RepeatCopy", "bits_per_sequence"]

_LN2 = math.log(2.0)


def bits_per_sequence(logits: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> float:
    """Binary cross-entropy in bits, summed over output bits and masked time steps, averaged over sequences.

    logits, targets: [T, B, n] (time-major; any number of leading time axes); mask: [T, B] (bool or 0/1).
    The NTM papers' "cost per sequence (bits)"; numerically stable in the logits.
    """
    x = np.asarray(logits, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    m = np.asarray(mask, dtype=np.float64)
    bce = np.logaddexp(0.0, x) - t * x  # [T, B, n] nats: -t log σ(x) - (1-t) log(1-σ(x))
    per_step = bce.sum(axis=-1) * m / _LN2  # [T, B] bits
    per_seq = per_step.reshape(-1, per_step.shape[-1]).sum(axis=0)  # [B]
    return float(per_seq.mean())


class _CopyBase(gym.Env):
    """Shared machinery: a fixed episode layout computed at reset, served one time step per call."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, n_in: int, n_out: int, batch_size: int, length: int, bits: int) -> None:
        for name, v in (("batch_size", batch_size), ("length", length), ("bits", bits)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be an int >= 1, got {v!r}")
        self.batch_size, self.bits, self.length = batch_size, bits, length
        self.n_in, self.n_out = n_in, n_out
        high = np.ones((batch_size, n_in), np.float32)
        if n_in == bits + 2:  # RepeatCopy's repeat-count channel: R / repeat_norm, unbounded in principle
            high[:, -1] = 1000.0
        self.observation_space = spaces.Box(np.zeros_like(high), high, dtype=np.float32)
        self.action_space = spaces.Box(0.0, 1.0, (batch_size, n_out), np.float32)
        self._obs = np.zeros((0, batch_size, n_in), np.float32)  # [L, B, n_in] for the current episode
        self._tgt = np.zeros((0, batch_size, n_out), np.float32)  # [L, B, n_out]
        self._mask = np.zeros((0,), bool)  # [L]
        self._t = -1

    def set_length(self, n: int) -> None:
        """Sequence length N from the next reset on."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"length must be an int >= 1, got {n!r}")
        self.length = n

    @property
    def episode_length(self) -> int:
        return int(self._mask.shape[0])

    def _layout(self, seq: np.ndarray) -> None:  # fills _obs, _tgt, _mask from seq [B, N, bits]
        raise NotImplementedError

    def _info(self) -> dict[str, Any]:
        t = self._t
        return {
            "target": self._tgt[t].copy(),
            "mask": np.full((self.batch_size,), self._mask[t], dtype=bool),
            "t": t,
            "length": self.length,
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "length" in options:
            self.set_length(options["length"])
        if "repeats" in options:
            self.set_repeats(options["repeats"])  # type: ignore[attr-defined]
        seq = self.np_random.integers(0, 2, size=(self.batch_size, self.length, self.bits)).astype(np.float32)
        self._layout(seq)
        self._t = 0
        return self._obs[0].copy(), self._info()

    def step(self, action: Any):
        if self._t < 0 or self._t >= self.episode_length - 1:
            raise RuntimeError(f"{type(self).__name__}: episode over (or not started); call reset()")
        self._t += 1
        terminated = self._t == self.episode_length - 1
        return self._obs[self._t].copy(), 0.0, terminated, False, self._info()


class Copy(_CopyBase):
    """NTM Copy: remember N random ``bits``-bit vectors, replay them after the delimiter."""

    def __init__(self, batch_size: int = 32, length: int = 1, bits: int = 8) -> None:
        super().__init__(n_in=bits + 1, n_out=bits, batch_size=batch_size, length=length, bits=bits)

    def output_steps(self) -> int:
        """Output-phase steps per sequence at the current length (for per-step error)."""
        return self.length

    def _layout(self, seq: np.ndarray) -> None:
        b, n, k = seq.shape
        total = 2 * n + 1
        obs = np.zeros((total, b, k + 1), np.float32)
        tgt = np.zeros((total, b, k), np.float32)
        obs[:n, :, :k] = seq.transpose(1, 0, 2)  # input phase
        obs[n, :, k] = 1.0  # delimiter
        tgt[n + 1 :] = seq.transpose(1, 0, 2)  # output phase
        mask = np.zeros(total, bool)
        mask[n + 1 :] = True
        self._obs, self._tgt, self._mask = obs, tgt, mask


class RepeatCopy(_CopyBase):
    """NTM Repeat Copy: replay N vectors R times, then raise the end marker; R is given as an input."""

    def __init__(
        self,
        batch_size: int = 32,
        length: int = 1,
        repeats: int = 1,
        bits: int = 8,
        repeat_norm: float = 10.0,
    ) -> None:
        super().__init__(n_in=bits + 2, n_out=bits + 1, batch_size=batch_size, length=length, bits=bits)
        if not isinstance(repeat_norm, (int, float)) or isinstance(repeat_norm, bool) or repeat_norm <= 0:
            raise ValueError(f"RepeatCopy: repeat_norm must be a number > 0, got {repeat_norm!r}")
        self.repeat_norm = float(repeat_norm)
        self.repeats = 1
        self.set_repeats(repeats)

    def set_repeats(self, r: int) -> None:
        """Repeat count R from the next reset on."""
        if not isinstance(r, int) or isinstance(r, bool) or r < 1:
            raise ValueError(f"repeats must be an int >= 1, got {r!r}")
        self.repeats = r

    def output_steps(self) -> int:
        """Output-phase steps per sequence: N·R replays + the end marker."""
        return self.length * self.repeats + 1

    def _info(self) -> dict[str, Any]:
        info = super()._info()
        info["repeats"] = self.repeats
        return info

    def _layout(self, seq: np.ndarray) -> None:
        b, n, k = seq.shape
        r = self.repeats
        total = n + 1 + n * r + 1
        obs = np.zeros((total, b, k + 2), np.float32)
        tgt = np.zeros((total, b, k + 1), np.float32)
        obs[:n, :, :k] = seq.transpose(1, 0, 2)
        obs[n, :, k] = 1.0  # delimiter
        obs[n, :, k + 1] = r / self.repeat_norm  # repeat count, normalised
        tgt[n + 1 : n + 1 + n * r, :, :k] = np.tile(seq, (1, r, 1)).transpose(1, 0, 2)
        tgt[-1, :, k] = 1.0  # end marker
        mask = np.zeros(total, bool)
        mask[n + 1 :] = True
        self._obs, self._tgt, self._mask = obs, tgt, mask
