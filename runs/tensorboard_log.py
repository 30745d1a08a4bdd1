"""TensorBoard event files beside a run's JSON lines: ``tb/<stream>/`` for each agent and for ``eval``.

Written by the supervisor process as the rows arrive (never in an agent's loop), so ``tensorboard --logdir out``
shows every run's curves live. Without the ``tensorboard`` package a run says so once and writes none.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

EVAL = "eval"
# not charted: the x axis, the time since start (every event carries its own wall time), an evaluation's bookkeeping
_NOT_SCALARS = frozenset({"step", "time", "agent", "round", "at", "final"})


def scalars(stream: str, row: dict[str, Any]) -> dict[str, float]:
    """The TensorBoard tags and values of one JSONL row: its numbers (not bools) but the bookkeeping fields.
    An evaluation's tags are ``<agent>/<key>``, the agent that reported it, so several heads never collide."""
    prefix = f"{row.get('agent', '')}/" if stream == EVAL else ""
    return {prefix + k: float(v) for k, v in row.items()
            if k not in _NOT_SCALARS and isinstance(v, int | float) and not isinstance(v, bool)}


class TensorBoardLog:
    """One ``SummaryWriter`` per stream under ``root``, opened at its first row; ``close`` flushes them all.
    tensorboard is imported here, before a run starts, not at its first row in the supervisor's loop."""

    def __init__(self, root: Path, flush_secs: int = 5) -> None:
        self.root = root
        self.flush_secs = flush_secs
        self._writers: dict[str, Any] = {}
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            SummaryWriter = None
            print("note: tensorboard is not installed, so this run writes no TensorBoard events "
                  "(pip install tensorboard)", file=sys.stderr)
        self._writer_class: Any = SummaryWriter
        self.available = SummaryWriter is not None

    def add(self, stream: str, row: dict[str, Any]) -> None:
        """Write one JSONL row of ``stream`` (an agent's name or ``eval``) at the step it carries."""
        if not self.available or "step" not in row:
            return
        values = scalars(stream, row)
        if not values:
            return
        writer = self._writers.get(stream)
        if writer is None:
            writer = self._writers[stream] = self._writer_class(str(self.root / stream), flush_secs=self.flush_secs)
        for tag, value in values.items():
            writer.add_scalar(tag, value, global_step=int(row["step"]))

    def close(self) -> None:
        """Flush and close every writer (safe to call twice)."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
