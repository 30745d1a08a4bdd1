"""Length curriculum for Copy / Repeat Copy: lengthen the task once the recent error is low enough.

Why: the DNI paper's recurrent score is the longest sequence a truncated-BPTT LSTM can solve, found by a
curriculum (as in Graves et al. 2014): start at length 1 and step up whenever the average error over the
last few batches at the current level falls below a threshold. For Repeat Copy the sequence length N and
the repeat count R are stepped up alternately (N first).

Error unit: ``unit = "sequence"`` (default) compares the threshold with bits per sequence (NTM's "cost
per sequence"), ``"step"`` with bits per output step. Default threshold 0.15.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

from pydantic import model_validator

from .config import InvalidKey, Positive, PositiveInt, Strict

__all__ = ["Curriculum", "CurriculumConfig"]


class CurriculumConfig(Strict):
    """The ``[curriculum]`` recipe section."""

    threshold: Positive = 0.15  # advance when the mean error over `avg_over` episodes is below this
    unit: Literal["sequence", "step"] = "sequence"  # "sequence": bits per sequence; "step": bits per output step
    avg_over: PositiveInt = 10  # episodes (batches) averaged at the current level before it can advance
    start_length: PositiveInt = 1
    start_repeats: PositiveInt = 1  # Repeat Copy only
    max_length: PositiveInt = 10_000  # caps (the curriculum stops lengthening there)
    max_repeats: PositiveInt = 10_000

    @model_validator(mode="after")
    def _starts_below_caps(self) -> CurriculumConfig:
        if self.start_length > self.max_length:
            raise InvalidKey("start_length", f"must be <= max_length ({self.max_length}), got {self.start_length}")
        if self.start_repeats > self.max_repeats:
            raise InvalidKey("start_repeats", f"must be <= max_repeats ({self.max_repeats}), got {self.start_repeats}")
        return self


class Curriculum:
    """Tracks the current level (length, repeats) and the levels solved so far."""

    def __init__(self, cfg: CurriculumConfig, repeat: bool = False) -> None:
        self.cfg = cfg
        self.repeat = repeat
        self.length = cfg.start_length
        self.repeats = cfg.start_repeats if repeat else 1
        self.recent: deque[float] = deque(maxlen=cfg.avg_over)
        self.solved: list[tuple[int, int]] = []  # (length, repeats) of each level passed
        self._next_is_length = True

    def error(self, bits_per_seq: float, output_steps: float) -> float:
        """The error in the configured unit."""
        return bits_per_seq if self.cfg.unit == "sequence" else bits_per_seq / max(output_steps, 1)

    def update(self, bits_per_seq: float, output_steps: float) -> bool:
        """Record one episode's error at the current level; True if the level was just solved (advanced)."""
        self.recent.append(self.error(bits_per_seq, output_steps))
        if len(self.recent) < self.cfg.avg_over or sum(self.recent) / len(self.recent) >= self.cfg.threshold:
            return False
        self.solved.append((self.length, self.repeats))
        self._advance()
        self.recent.clear()
        return True

    def _advance(self) -> None:
        can_len = self.length < self.cfg.max_length
        can_rep = self.repeat and self.repeats < self.cfg.max_repeats
        if can_len and (self._next_is_length or not can_rep):
            self.length += 1
        elif can_rep:
            self.repeats += 1
        if self.repeat:
            self._next_is_length = not self._next_is_length

    @property
    def mean_error(self) -> float | None:
        return sum(self.recent) / len(self.recent) if self.recent else None

    @property
    def max_length(self) -> int:
        """Longest solved output: N for Copy, N·R (vectors replayed) for Repeat Copy; 0 if none solved."""
        return max((n * r for n, r in self.solved), default=0)
