"""Rows -> a rich table on the terminal and a JSON list on disk: the one output format of every bench."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .. import records

Row = dict[str, Any]


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    if value is None:
        return "-"
    return str(value)


def print_table(title: str, rows: Sequence[Row], columns: Sequence[str] | None = None,
                console: Console | None = None) -> None:
    """Print rows as a table; columns default to every key, in first-seen order."""
    console = console or Console()
    if not rows:
        console.print(f"[bold]{title}[/bold]: no rows")
        return
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="left" if isinstance(rows[0].get(col), str) else "right")
    for row in rows:
        table.add_row(*(_fmt(row.get(col)) for col in columns))
    console.print(table)


def markdown_table(rows: Sequence[Row], columns: Sequence[str]) -> str:
    """The same rows as a Markdown table (for the results document)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the numbers were measured on: cores, CPU model, memory, load."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover - psutil is a dependency
        mem_gb = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"nproc": cores, "cpu": model or platform.processor(), "memory_gb": mem_gb,
            "load_1min": round(load, 2) if load is not None else None, "python": platform.python_version()}


def write_json(path: str | os.PathLike, rows: Sequence[Row]) -> None:
    """Write the rows as a JSON list; each row also names the machine, so a row stands alone."""
    host = machine()
    records.write_json(Path(path), [{**row, "machine": host} for row in rows], compact=True)
