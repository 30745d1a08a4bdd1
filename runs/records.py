"""The run folder: resolved recipe, metadata, per-agent metrics (JSON lines and TensorBoard events), evaluations
and summary.

Everything is written as it arrives, so a run that fails or is stopped keeps its records. When the run ends,
``summary.json`` also takes the metadata (``meta``) and the composed system's evaluations (``evals``): a finished
run's record is ``recipe.toml`` + ``summary.json``, two small files that the repository keeps (results/README.md);
``meta.json`` and ``metrics/`` are the live copies, for resuming and for the full streams.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import socket
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import tomli_w

from agents import atomic_writer

from .tensorboard_log import TensorBoardLog

COMPLETED = "completed"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("dnilab", "torch", "pyzmq", "gymnasium", "numpy", "ray"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def new_run_dir(name: str, out: str | Path | None = None) -> Path:
    """``out`` if given, else a fresh ``out/<time>-<name>`` folder (``out/`` is git-ignored)."""
    if out is not None:
        path = Path(out)
    else:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path("out") / f"{stamp}-{name}"
        i = 1
        while path.exists():
            path = Path("out") / f"{stamp}-{name}-{i}"
            i += 1
    path.mkdir(parents=True, exist_ok=True)
    return path


def _clean(value: Any) -> Any:
    """TOML has no null: drop None values when writing the resolved recipe."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


class RunRecords:
    """Writes one run folder; implements the supervisor's Recorder protocol."""

    def __init__(self, path: Path, recipe: dict[str, Any], recipe_path: str | None = None,
                 resumed_from: str | None = None) -> None:
        """``resumed_from``: the status of the run this one continues in the same folder (``dnilab resume``);
        its records are kept and appended to, and meta.json lists every resumption."""
        self.path = path
        (path / "metrics").mkdir(parents=True, exist_ok=True)
        self.t0 = time.monotonic()
        self.meta: dict[str, Any] = {"name": recipe["run"].get("name", ""), "recipe": recipe_path,
                                     "started": _now(), "ended": None, "git_commit": git_commit(),
                                     "host": socket.gethostname(), "versions": versions(), "agents": {}}
        if resumed_from is None:
            (path / "recipe.toml").write_text(tomli_w.dumps(_clean(recipe)))
        else:
            previous = json.loads((path / "meta.json").read_text())
            resumptions = [*previous.get("resumptions", []), {"at": _now(), "after": resumed_from,
                                                               "git_commit": self.meta["git_commit"]}]
            self.meta = {**previous, "ended": None, "resumptions": resumptions}
        self.evals: list[dict[str, Any]] = []
        self.final_eval: dict[str, Any] = {}
        self.latest: dict[str, dict[str, Any]] = {}
        self.done_stats: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}
        self.rejected: dict[str, dict[str, dict[str, Any]]] = {}  # receiver -> claimed sender -> count, reason
        self.restarts: list[dict[str, Any]] = []
        self.listeners: list = []
        self._files: dict[str, Any] = {}
        self.board = TensorBoardLog(path / "tb")
        self._write_meta()

    def _write_meta(self) -> None:
        write_json(self.path / "meta.json", self.meta)

    def _append(self, stream: str, row: dict[str, Any]) -> None:
        f = self._files.get(stream)
        if f is None:
            f = self._files[stream] = open(self.path / "metrics" / f"{stream}.jsonl", "a")  # noqa: SIM115
        f.write(json.dumps(rounded(row)) + "\n")
        f.flush()
        self.board.add(stream, row)

    def record(self, sender: str, verb: str, step: int, meta: dict[str, Any]) -> None:
        values = {k: v for k, v in meta.items() if k != "verb"}
        elapsed = time.monotonic() - self.t0
        if verb == "ready":
            self.meta["agents"][sender] = {k: values.get(k) for k in ("pid", "host", "device", "node_ip")
                                           if values.get(k) is not None}
            self._write_meta()
        elif verb == "metrics":
            row = {"step": step, "time": elapsed, **values}
            self.latest[sender] = row
            self._append(sender, row)
            self._count_rejections(sender, values)
        elif verb == "rejected":
            entry = self.rejected.setdefault(sender, {}).setdefault(str(values.get("sender")), {"count": 1})
            entry["count"] = max(entry["count"], int(values.get("count", 1)))
            if "reason" in values:
                entry.setdefault("reason", values["reason"])
                self._append("rejected", {"receiver": sender, "time": elapsed, **values})
        elif verb == "restart":
            row = {"agent": sender, "step": step, "time": elapsed, **values}
            self.restarts.append(row)
            self._append("restarts", row)
        elif verb == "eval":
            row = {"agent": sender, "step": step, "time": elapsed, **values}
            self.evals.append(row)
            self._append("eval", row)
            if values.get("final"):
                self.final_eval = {k: v for k, v in values.items() if k not in ("final", "round", "at")}
        elif verb == "done":
            self.done_stats[sender] = values
            self._count_rejections(sender, values)
        elif verb == "error":
            self.errors[sender] = values.get("traceback", "")
        for listener in self.listeners:
            listener(sender, verb, step, values)

    def _count_rejections(self, receiver: str, values: dict[str, Any]) -> None:
        """Metric columns ``rejected/<sender>`` carry a receiver's running count of rejected messages."""
        for key, value in values.items():
            if key.startswith("rejected/"):
                entry = self.rejected.setdefault(receiver, {}).setdefault(key[len("rejected/"):], {"count": 0})
                entry["count"] = max(entry["count"], int(value))

    def close(self) -> None:
        """Close the JSONL files and the TensorBoard writers; ``finish`` does it, and it is safe to call again."""
        for f in self._files.values():
            f.close()
        self._files.clear()
        self.board.close()

    def finish(self, status: str, error: str | None = None, extra: dict[str, Any] | None = None) -> dict:
        self.close()
        self.meta["ended"] = _now()
        self.meta["wall_s"] = round(time.monotonic() - self.t0, 3)
        self._write_meta()
        summary = {"status": status, "name": self.meta["name"], "eval": self.final_eval,
                   "wall_s": self.meta["wall_s"], "agents": self.done_stats, **(extra or {})}
        if "resumptions" in self.meta:
            summary["resumptions"] = self.meta["resumptions"]
        if self.rejected:
            summary["rejected"] = self.rejected
        if self.restarts:
            summary["restarts"] = self.restarts
        if error:
            summary["error"] = error
        summary["meta"] = self.meta
        summary["evals"] = self.evals
        write_json(self.path / "summary.json", summary)
        return summary


SIGNIFICANT = 7  # digits kept of a recorded float: metrics come from float32 tensors; the rest is rounding noise


def rounded(value: Any) -> Any:
    """``value`` with every float rounded to ``SIGNIFICANT`` digits (7.450000000000001 -> 7.45), for the records."""
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT}g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return value


def write_json(path: Path, value: Any, compact: bool = False) -> None:
    """Write ``value`` as JSON (floats ``rounded``), whole or not at all (``agents.atomic_writer``); ``compact``
    for long streams of rows, where indentation would double the size of a committed record."""
    layout = {"separators": (",", ":")} if compact else {"indent": 2}
    with atomic_writer(path) as f:
        f.write((json.dumps(rounded(value), default=str, **layout) + "\n").encode())


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def read_evals(run_dir: Path) -> list[dict[str, Any]]:
    """The composed system's evaluations of a run: ``metrics/eval.jsonl`` of a live or full run folder, else the
    ``evals`` that ``summary.json`` keeps (the committed record)."""
    rows = read_jsonl(Path(run_dir) / "metrics" / "eval.jsonl")
    return rows or (read_summary(run_dir) or {}).get("evals", [])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a run killed mid-write leaves at most one partial line
    return rows
