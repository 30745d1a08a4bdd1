"""A live progress display for ``dnilab run``: training batches, throughput, the latest composed error."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RunProgress:
    """Listens to the run's records and redraws one line; quiet when stderr is not a terminal."""

    def __init__(self, total: int, label: str, enabled: bool = True, key: str = "steps",
                 status: str = "starting agents", unit: str = "step") -> None:
        self.console = Console(stderr=True)
        self.enabled = enabled
        self.key = key
        self.unit = unit
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=self.console,
            disable=not enabled, transient=False)
        self.task = self.progress.add_task(label, total=total, status=status)
        self.last_eval = ""
        self.rate = 0.0
        self.plain = enabled and not sys.stderr.isatty()
        self._last_plain = -1

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def __call__(self, sender: str, verb: str, step: int, values: dict[str, Any]) -> None:
        if verb == "ready":
            self.progress.update(self.task, status=f"{sender} ready")
        elif verb == "metrics" and self.key in values and sender in ("env", "recurrent", "system"):
            self.rate = values.get("batches_per_s", self.rate)
            self.advance_to(values[self.key])
        elif verb == "eval":
            shown = {k: v for k, v in values.items() if k.startswith(("test_", "valid_", "max_", "mean_return"))}
            self.last_eval = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in shown.items())
            self.progress.update(self.task, status=self._status())
            if self.plain:
                self.console.print(f"eval at step {step}: {self.last_eval}")

    def advance_to(self, done: int) -> None:
        """Show ``done`` of the total: redraw the bar, or without a terminal print a line every ~10 %."""
        self.progress.update(self.task, completed=done, status=self._status())
        self._plain_line(done)

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more done (for work that reports each item rather than a running total)."""
        self.advance_to(int(self.progress.tasks[0].completed) + n)

    def _status(self) -> str:
        rate = f"{self.rate:.0f} batch/s" if self.rate else ""
        return " | ".join(x for x in (rate, self.last_eval) if x)

    def _plain_line(self, done: int) -> None:
        """Without a terminal (CI, logs) print a line every ~10 % instead of redrawing."""
        if not self.plain:
            return
        total = self.progress.tasks[0].total or 1
        decile = int(10 * done / total)
        if decile != self._last_plain:
            self._last_plain = decile
            self.console.print(f"{self.unit} {done}/{int(total)} {self._status()}".rstrip())
