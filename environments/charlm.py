"""Character-level language modelling as a stream of B parallel contiguous character streams.

Why here: the DNI paper trains an LSTM with truncated BPTT on characters and reports bits per character;
the standard batching for that is to cut the split into B contiguous streams and walk them in lockstep, so
the recurrent state carries over from one step (and one truncation window) to the next.

Protocol: ``reset()`` -> ``(obs_0, info_0)``; ``step(action)`` -> ``(obs_t, 0.0, terminated, truncated,
info_t)``; the action (predicted ids) is ignored and may be ``None``.

- obs: int64 ``[B]`` character ids at position t of each stream; ``info["target"]``: int64 ``[B]`` the
  next characters; ``info["mask"]``: bool ``[B]``, all True.
- One pass = ``len(split) // B - 1`` steps. The obs returned with ``terminated`` / ``truncated`` is the
  pass's last step and still counts. valid/test: ``terminated`` after one pass. train: ``truncated``
  after each pass; ``reset()`` starts the next pass from the beginning.
- The vocabulary comes from the train split (``env.vocab``); ``text=`` injects a corpus (a string split
  90/5/5, or a ``{"train","valid","test"}`` dict) instead of loading ``corpus``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .text import SPLITS, Vocab, load_corpus, split_by_position

__all__ = ["CharLM"]

_LOADED: dict[tuple[str, str], tuple[dict[str, str], Vocab]] = {}  # (corpus, root) -> (splits, vocab)


def _corpus(corpus: str, root: Path | str | None, download: bool) -> tuple[dict[str, str], Vocab]:
    """Load (once per process) a named corpus and its train-split vocabulary."""
    key = (corpus, str(root))
    if key not in _LOADED:
        splits = load_corpus(corpus, root, download)
        _LOADED[key] = (splits, Vocab.from_splits(splits))
    return _LOADED[key]


class CharLM(gym.Env):
    """B contiguous streams over one split of a character corpus; see the module docstring."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        split: str = "train",
        batch_size: int = 32,
        corpus: str = "shakespeare",
        text: str | dict[str, str] | None = None,
        root: str | None = None,
        download: bool = True,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"CharLM: split must be one of {SPLITS}, got {split!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"CharLM: batch_size must be an int >= 1, got {batch_size!r}")
        if text is None:
            splits, vocab = _corpus(corpus, root, download)
        else:
            splits = split_by_position(text) if isinstance(text, str) else dict(text)
            if set(splits) != set(SPLITS):
                raise ValueError(f"CharLM: text dict must have keys {SPLITS}, got {sorted(splits)}")
            vocab = Vocab.from_splits(splits)
        self.split, self.batch_size, self.vocab = split, batch_size, vocab
        ids = vocab.encode(splits[split])
        n = len(ids) // batch_size
        if n < 3:
            raise ValueError(
                f"CharLM: split {split!r} has {len(ids)} chars, too few for {batch_size} streams"
            )
        self.streams = ids[: n * batch_size].reshape(batch_size, n)  # [B, n] contiguous streams
        self.steps_per_pass = n - 1
        v = len(vocab)
        self.vocab_size = v
        self.observation_space = spaces.MultiDiscrete(np.full(batch_size, v, dtype=np.int64))
        self.action_space = spaces.MultiDiscrete(np.full(batch_size, v, dtype=np.int64))
        self._p = -1

    def _info(self) -> dict[str, Any]:
        return {
            "target": self.streams[:, self._p + 1].copy(),
            "mask": np.ones(self.batch_size, dtype=bool),
            "position": self._p,
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._p = 0
        return self.streams[:, 0].copy(), self._info()

    def step(self, action: Any):
        if self._p < 0 or self._p >= self.steps_per_pass - 1:
            raise RuntimeError("CharLM: pass over (or not started); call reset()")
        self._p += 1
        last = self._p == self.steps_per_pass - 1
        finite = self.split != "train"
        return self.streams[:, self._p].copy(), 0.0, last and finite, last and not finite, self._info()
