"""Copy and Repeat Copy (Graves et al. 2014, the Neural Turing Machine tasks) as batched time-step streams.

Why here: the DNI paper (Jaderberg et al. 2016, Sect. 3.1) measures how far back an RNN trained with
truncated BPTT can remember by the longest Copy / Repeat Copy sequence it solves under a curriculum.

Protocol (one env step = one time step of B sequences; the episode lasts as long as its longest sequence):

- ``reset(seed=..., options={"length": N, "repeats": R})`` -> ``(obs_0, info_0)``; ``step(action)`` ->
  ``(obs_t, 0.0, terminated, False, info_t)``. The action (predictions) is ignored and may be ``None``.
- The obs returned with ``terminated=True`` is the *last* time step of the episode and still counts;
  stepping again needs a ``reset()``.
- ``info["target"]``: float32 ``[B, n_out]``; ``info["mask"]``: bool ``[B]``, True where sequence b is in
  its output phase, the only steps that count for the loss.
- ``set_length(n)`` / ``set_repeats(r)`` (or the ``options`` above) set the level from the next reset on,
  for a curriculum.
- ``lengths = "uniform"`` (default): each sequence draws its own length uniformly from 1..N (and, Repeat
  Copy, its own repeat count from 1..R), as the NTM paper draws lengths from a range (1-20 for Copy, 1-10
  for Repeat Copy); shorter sequences are padded at the end with zero inputs, zero targets and mask False.
  ``"level"``: every sequence has exactly N (and R), so every episode is one fixed layout.

Copy, channels ``n_in = bits + 1`` (last = delimiter): n input vectors, one delimiter step, then n output
steps with zero input whose targets are the n vectors. A sequence takes 2n + 1 steps.

RepeatCopy, ``n_in = bits + 2`` (delimiter, repeat count r / ``repeat_norm``), ``n_out = bits + 1`` (last
= end marker): n input vectors, one delimiter step carrying r, then n·r output steps replaying the vectors
r times and one step with only the end marker set. A sequence takes n + 1 + n·r + 1 steps.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["LENGTHS", "Copy", "RepeatCopy", "bits_per_sequence"]

_LN2 = math.log(2.0)
LENGTHS = ("uniform", "level")  # how a sequence's length (and repeat count) is drawn at level N (and R)


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

    def __init__(self, n_in: int, n_out: int, batch_size: int, length: int, bits: int, lengths: str) -> None:
        for name, v in (("batch_size", batch_size), ("length", length), ("bits", bits)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be an int >= 1, got {v!r}")
        if lengths not in LENGTHS:
            raise ValueError(f"{type(self).__name__}: lengths must be one of {', '.join(LENGTHS)}, got {lengths!r}")
        self.batch_size, self.bits, self.length, self.lengths = batch_size, bits, length, lengths
        self.n_in, self.n_out = n_in, n_out
        high = np.ones((batch_size, n_in), np.float32)
        if n_in == bits + 2:  # RepeatCopy's repeat-count channel: R / repeat_norm, unbounded in principle
            high[:, -1] = 1000.0
        self.observation_space = spaces.Box(np.zeros_like(high), high, dtype=np.float32)
        self.action_space = spaces.Box(0.0, 1.0, (batch_size, n_out), np.float32)
        self._obs = np.zeros((0, batch_size, n_in), np.float32)  # [L, B, n_in] for the current episode
        self._tgt = np.zeros((0, batch_size, n_out), np.float32)  # [L, B, n_out]
        self._mask = np.zeros((0, batch_size), bool)  # [L, B]
        self._t = -1

    def set_length(self, n: int) -> None:
        """Sequence length N from the next reset on."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"length must be an int >= 1, got {n!r}")
        self.length = n

    @property
    def episode_length(self) -> int:
        return int(self._mask.shape[0])

    def _draw(self, level: int) -> np.ndarray:
        """Per-sequence values [B] at a level: all ``level`` or uniform on 1..level (``lengths``)."""
        if self.lengths == "level":
            return np.full(self.batch_size, level, dtype=np.int64)
        return self.np_random.integers(1, level + 1, size=self.batch_size)

    def _layout(self, seq: np.ndarray, ns: np.ndarray) -> None:
        """Fill _obs, _tgt, _mask from seq [B, max n, bits], of which sequence b uses its first ns[b] vectors."""
        raise NotImplementedError

    def _info(self) -> dict[str, Any]:
        t = self._t
        return {
            "target": self._tgt[t].copy(),
            "mask": self._mask[t].copy(),
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
        ns = self._draw(self.length)
        seq = self.np_random.integers(0, 2, size=(self.batch_size, int(ns.max()), self.bits)).astype(np.float32)
        self._layout(seq, ns)
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

    def __init__(self, batch_size: int = 32, length: int = 1, bits: int = 8, lengths: str = "uniform") -> None:
        super().__init__(n_in=bits + 1, n_out=bits, batch_size=batch_size, length=length, bits=bits,
                         lengths=lengths)

    def _layout(self, seq: np.ndarray, ns: np.ndarray) -> None:
        b, _, k = seq.shape
        total = int(2 * ns.max() + 1)
        obs = np.zeros((total, b, k + 1), np.float32)
        tgt = np.zeros((total, b, k), np.float32)
        mask = np.zeros((total, b), bool)
        for i, n in enumerate(ns.tolist()):
            obs[:n, i, :k] = seq[i, :n]  # input phase
            obs[n, i, k] = 1.0  # delimiter
            tgt[n + 1 : 2 * n + 1, i] = seq[i, :n]  # output phase
            mask[n + 1 : 2 * n + 1, i] = True
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
        lengths: str = "uniform",
    ) -> None:
        super().__init__(n_in=bits + 2, n_out=bits + 1, batch_size=batch_size, length=length, bits=bits,
                         lengths=lengths)
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

    def _info(self) -> dict[str, Any]:
        info = super()._info()
        info["repeats"] = self.repeats
        return info

    def _layout(self, seq: np.ndarray, ns: np.ndarray) -> None:
        b, _, k = seq.shape
        rs = self._draw(self.repeats)
        total = int((ns + 1 + ns * rs + 1).max())
        obs = np.zeros((total, b, k + 2), np.float32)
        tgt = np.zeros((total, b, k + 1), np.float32)
        mask = np.zeros((total, b), bool)
        for i, (n, r) in enumerate(zip(ns.tolist(), rs.tolist(), strict=True)):
            end = n + 1 + n * r  # the end marker's step
            obs[:n, i, :k] = seq[i, :n]
            obs[n, i, k] = 1.0  # delimiter
            obs[n, i, k + 1] = r / self.repeat_norm  # repeat count, normalised
            tgt[n + 1 : end, i, :k] = np.tile(seq[i, :n], (r, 1))
            tgt[end, i, k] = 1.0  # end marker
            mask[n + 1 : end + 1, i] = True
        self._obs, self._tgt, self._mask = obs, tgt, mask
