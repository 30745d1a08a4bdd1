"""When the levels of a multi-timescale chain tick, and how big each level is.

``TickSchedule`` says which environment steps each level ticks at and how its truncation windows align with
the level above; ``level_macs`` / ``solve_hidden`` size a level's LSTM to a compute budget; ``pool_images`` /
``pooled_dim`` shrink image inputs for an M that reads them pooled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor
from torch.nn import functional as F

__all__ = ["TickSchedule", "level_macs", "pool_images", "pooled_dim", "solve_hidden"]


@dataclass(frozen=True)
class TickSchedule:
    """When a chain of levels ticks. ``periods[i]`` = ticks of level i every that many env steps."""

    periods: tuple[int, ...]
    episode_length: int
    top_window: int = 1  # TBPTT window of the top level, in its own ticks

    def __post_init__(self) -> None:
        p = self.periods
        if len(p) < 1 or p[0] != 1:
            raise ValueError(f"periods: the first level reads the environment every step (period 1), got {p}")
        for a, b in zip(p[:-1], p[1:]):
            if b <= a or b % a:
                raise ValueError(f"periods: each period must be a larger multiple of the previous one, got {p}")
        if self.top_window < 1:
            raise ValueError(f"top_window: must be >= 1, got {self.top_window}")
        span = p[-1] * self.top_window
        if self.episode_length % span:
            raise ValueError(f"episode_length {self.episode_length} must be a multiple of the top level's "
                             f"period x window = {span}")

    def is_tick(self, level: int, step: int) -> bool:
        p = self.periods[level]
        return step % p == p - 1

    def ticks(self, level: int, start: int, stop: int) -> list[int]:
        """Steps in [start, stop) at which ``level`` ticks."""
        return [s for s in range(start, stop) if self.is_tick(level, s)]

    def window(self, level: int) -> int:
        """TBPTT window of ``level`` in its own ticks: one period of the next level (or top_window)."""
        if level == len(self.periods) - 1:
            return self.top_window
        return self.periods[level + 1] // self.periods[level]

    def group(self, level: int, backward: list[str]) -> int:
        """Env steps whose windows a ``backprop`` sender at ``level`` may hold before it must update.

        The receiver sends its δs once its own window is done (or, if it waits itself, once its group
        is done), so the sender holds every window of that span; ``backward[i]`` is the mode of the
        edge out of level i.
        """
        up = level + 1
        span = self.window(up) * self.periods[up]
        if up < len(self.periods) - 1 and backward[up] == "backprop":
            return max(span, self.group(up, backward))
        return span


def level_macs(in_dim: int, hidden: int, out_dim: int, encoder: int = 0, phases: int = 1) -> int:
    """Multiply-adds per sample per tick of one level (encoder + LSTM cell + readout)."""
    core_in = (encoder or in_dim) + (phases if phases > 1 else 0)
    return in_dim * encoder + 4 * hidden * (core_in + hidden) + hidden * out_dim


def solve_hidden(target_macs: float, in_dim: int, out_dim: int, phases: int = 1) -> int:
    """The hidden size whose per-tick compute (``level_macs``) is closest to ``target_macs``."""
    core_in = in_dim + (phases if phases > 1 else 0)
    # 4H^2 + (4 core_in + out) H - target = 0
    b = 4 * core_in + out_dim
    h = (-b + math.sqrt(b * b + 16 * target_macs)) / 8
    return max(1, round(h))


def pool_images(x: Tensor, factor: int) -> Tensor:
    """Flat square images [B, S * S] -> [B, (S // factor) ** 2], each factor x factor block averaged.

    Why: an M that reads raw digits needs their identity, not every pixel; 2x2 pooling quarters its encoder.
    """
    if factor == 1:
        return x
    side = math.isqrt(x.shape[1])
    return F.avg_pool2d(x.reshape(-1, 1, side, side), factor).flatten(1)


def pooled_dim(in_dim: int, factor: int) -> int:
    """Width of ``pool_images``' output; ValueError unless in_dim is a square image the factor divides."""
    if factor == 1:
        return in_dim
    side = math.isqrt(in_dim)
    if side * side != in_dim or side % factor:
        raise ValueError(f"pool = {factor} needs square images whose side it divides; the inputs have {in_dim} "
                         "values")
    return (side // factor) ** 2
