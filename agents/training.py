"""What every training agent (``FeedForwardAgent``, ``TickingAgent``) shares: running means of its metrics,
its counters, the periodic metrics row, its checkpoint and what it says when it stops.

A subclass sets, in its ``start``: ``means`` (``RunningMeans``), ``t_start``, ``t_last_report``,
``done_at_last_report``, ``busy_s``, ``updates``, ``last_step``, ``optimizer``; and says what it trains
(``network``), how much work it did (``work_done``, reported per second as ``rate_key``) and what its
synthesizers hold (``synthesizer_state``).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoints import write_checkpoint
from .devices import placement
from .node import Node

__all__ = ["RunningMeans", "TrainingAgent"]


class RunningMeans:
    """Means of scalar metrics since the last report; ``skip_nonfinite``: a NaN or infinite value is left out
    (an SG quality ratio against a zero target) rather than spoiling its mean."""

    def __init__(self, skip_nonfinite: bool = False) -> None:
        self.skip_nonfinite = skip_nonfinite
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, values: dict[str, float], prefix: str = "") -> None:
        for k, v in values.items():
            if self.skip_nonfinite and not math.isfinite(v):
                continue
            self.sums[prefix + k] += float(v)
            self.counts[prefix + k] += 1

    def pop(self) -> dict[str, float]:
        out = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums.clear()
        self.counts.clear()
        return out


class TrainingAgent(Node):
    """Reporting, counters, checkpoint and stop of a training agent; the training itself is the subclass's."""

    rate_key = "steps_per_s"
    run_dir: Path | None
    means: RunningMeans
    optimizer: torch.optim.Optimizer
    t_start: float
    t_last_report: float
    done_at_last_report: int
    busy_s: float
    updates: int
    last_step: int

    def network(self) -> nn.Module:
        """The module this agent trains (checkpointed; its placement goes into the records)."""
        raise NotImplementedError

    def work_done(self) -> int:
        """Units of work so far (training steps, ticks): the metrics row reports their rate."""
        raise NotImplementedError

    def synthesizer_state(self) -> dict[str, Any]:
        """What the checkpoint keeps of this agent's synthesizers, keyed as the checkpoint names them."""
        return {}

    def counters(self) -> dict[str, float]:
        """Totals every training agent reports; subclasses add their own."""
        return {"updates": self.updates, "wall_s": time.monotonic() - self.t_start,
                "lr": self.optimizer.param_groups[0]["lr"]}

    def _report(self) -> None:
        now = time.monotonic()
        values = self.means.pop()
        values.update(self.counters())
        done = self.work_done()
        values[self.rate_key] = (done - self.done_at_last_report) / max(now - self.t_last_report, 1e-9)
        values["busy"] = self.busy_s / max(now - self.t_start, 1e-9)
        self.t_last_report = now
        self.done_at_last_report = done
        self.rt.tell("metrics", step=self.last_step, **values)

    def report_eval(self, result: dict[str, Any]) -> None:
        """Tell the supervisor one evaluation pass's result (the final one completes the run), and start the
        next pass's tallies (``eval_correct``, ``eval_total``, ``eval_loss``) from zero."""
        self.eval_correct = self.eval_total = 0
        self.eval_loss = 0.0
        self.rt.tell("eval", step=result["at"], **result)
        if result["final"]:
            self.rt.tell("complete")

    def save_checkpoint(self) -> None:
        if self.run_dir is None:
            return
        state = {"agent": self.name, "step": self.last_step, "module": self.network().state_dict(),
                 "optimizer": self.optimizer.state_dict(), **self.synthesizer_state()}
        write_checkpoint(self.run_dir, self.name, state)

    def on_stop(self) -> dict[str, Any]:
        self.save_checkpoint()
        self._report()  # a last metrics row, so even a slow agent's records are never empty
        return {**self.counters(), **placement(self.network())}
