"""``dnilab bench faults``: what a real run survives (docs/FAULTS.md), measured on real runs from outside.

Each case is an ordinary ``dnilab run`` in a child process with a temp folder of its own (its ipc socket files),
watched through its run folder (``meta.json`` for the nodes' pids, ``metrics/<agent>.jsonl`` for their steps) and
hit as a user or a crash would hit it:

- ``clean``: uninterrupted, with the same periodic checkpoints: the baseline of every other case of its seed.
- ``kill``: ``kill -9`` of the victim when it reaches ``at`` x ``run.steps``, with ``run.restarts = 1``.
- ``kill-twice``: the same, then the restarted victim killed again: the run must fail, soon.
- ``resume``: SIGTERM to the run at the same point, then ``dnilab resume``.
- ``stray``: malformed frames of every sort pushed into every inbox of the run at 25, 50 and 75 % of the budget.

The clean and stray cases sample every node's RSS from the 25 % mark on (psutil), so the stray case's growth has
the clean case's beside it; every case counts the run's socket files left in its temp folder.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import zmq

from .. import records
from ..execute import prepare

CASES = ("clean", "kill", "kill-twice", "resume", "stray")
COLUMNS = ["recipe", "seed", "case", "status", "test_error", "delta", "restarts", "down_s", "steps_lost",
           "neighbour_steps_down", "fail_after_s", "rejected", "rss_growth_mb", "sockets_left", "wall_s"]
STRAY_MARKS = (0.25, 0.5, 0.75)
_POLL_S = 0.25
_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Settings:
    recipe: str = "runs/mnist-fcn4-cdni.toml"
    victim: str = "l2"
    at: float = 0.5  # fraction of run.steps at which the victim is hit
    checkpoint_every: int = 200
    overrides: tuple[str, ...] = ()
    timeout_s: float = 7200.0
    quiet: bool = False


def stray_frames(sender: str, edge: str, huge_bytes: int = 8 << 20) -> list[list[bytes]]:
    """Garbage, a pickle, a wrong kind claiming ``sender``, a header from "intruder" announcing a 1 GiB tensor, a
    header whose tensor frame is missing, and one frame of ``huge_bytes`` (over an inbox's ZeroMQ size cap)."""
    def header(**kw: Any) -> bytes:
        return json.dumps({"v": 1, "kind": "act", "sender": sender, "edge": edge, "step": 0, "tensors": [],
                           "meta": {}, **kw}).encode()

    return [[b"\x00garbage\xff"], [pickle.dumps({"evil": 1})], [header(kind="label")],
            [header(sender="intruder", tensors=[{"dtype": "float32", "shape": [1 << 28, 1]}]), b"x"],
            [header(tensors=[{"dtype": "float32", "shape": [4, 4]}])], [b"\x01" * huge_bytes]]


def push_stray(endpoints: Sequence[str], frames: list[list[bytes]], ctx: zmq.Context | None = None) -> int:
    """Push the frames into every inbox endpoint (inproc ones need the binder's ``ctx``); returns the frames sent."""
    ctx = ctx or zmq.Context.instance()
    sent = 0
    for endpoint in endpoints:
        sock = ctx.socket(zmq.PUSH)
        sock.linger = 1000
        sock.sndtimeo = 1000
        try:
            sock.connect(endpoint)
            for parts in frames:
                sock.send_multipart(parts)
                sent += 1
        except zmq.ZMQError:
            pass  # an inbox that is gone (the run ended) takes nothing
        finally:
            sock.close()
    return sent


@dataclass
class LiveRun:
    """A ``dnilab`` command in a child process, watched through its run folder."""

    run_dir: Path
    tmp: Path
    proc: subprocess.Popen = field(init=False)
    rss_start: dict[int, float] = field(default_factory=dict)  # pid -> MB at the first sample
    rss_peak: dict[int, float] = field(default_factory=dict)

    def start(self, args: Sequence[str]) -> LiveRun:
        env = {**os.environ, "TMPDIR": str(self.tmp), "PYTHONPATH": str(_ROOT)}
        logs = self.run_dir.parent / "logs"  # beside the run folders, not among them (globs of run folders stay clean)
        logs.mkdir(parents=True, exist_ok=True)
        log = open(logs / f"{self.run_dir.name}.log", "a")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen([sys.executable, "-m", "runs.cli", *args, "--quiet"], cwd=_ROOT, env=env,
                                     stdout=log, stderr=subprocess.STDOUT)
        return self

    def pids(self) -> dict[str, int]:
        try:
            agents = json.loads((self.run_dir / "meta.json").read_text())["agents"]
        except (OSError, ValueError, KeyError):
            return {}
        return {name: a["pid"] for name, a in agents.items() if a.get("pid")}

    def step(self, agent: str) -> int:
        """The agent's updates so far, as it last reported them (its step index where it reports no updates): in a
        free-running run an agent's step index runs ahead of the updates it has done."""
        rows = records.read_jsonl(self.run_dir / "metrics" / f"{agent}.jsonl")
        return int(rows[-1].get("updates", rows[-1]["step"])) if rows else 0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def sample_rss(self) -> None:
        """RSS of the nodes alive at the first sample (a process started later, a restart, is left out: its
        start-up is not growth)."""
        first = not self.rss_start
        for pid in self.pids().values():
            if not first and pid not in self.rss_start:
                continue
            try:
                mb = psutil.Process(pid).memory_info().rss / 2**20
            except psutil.Error:
                continue
            self.rss_start.setdefault(pid, mb)
            self.rss_peak[pid] = max(self.rss_peak.get(pid, 0.0), mb)

    def rss_growth_mb(self) -> float | None:
        growth = [self.rss_peak[p] - self.rss_start[p] for p in self.rss_start]
        return round(max(growth), 1) if growth else None

    def wait_until(self, predicate, deadline: float, sample: bool = False) -> bool:
        """Poll until ``predicate()`` holds or the run has ended; sample RSS on the way if asked."""
        while time.monotonic() < deadline:
            if predicate():
                return True
            if not self.alive():
                return False
            if sample:
                self.sample_rss()
            time.sleep(_POLL_S)
        return False

    def sockets(self) -> list[Path]:
        return sorted(self.tmp.glob("dnilab-*.sock"))


def _kill(pid: int | None) -> float:
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return time.monotonic()


def _run_case(case: str, seed: int, steps: int, settings: Settings, run_dir: Path) -> dict[str, Any]:
    """One case of one seed, start to end; the row of what happened."""
    sets = [f"run.seed={seed}", f"run.checkpoint_every={settings.checkpoint_every}", *settings.overrides]
    if case in ("kill", "kill-twice"):
        sets.append("run.restarts=1")
    args = ["run", settings.recipe, *[x for s in sets for x in ("--set", s)], "--out", str(run_dir)]
    tmp = Path(tempfile.mkdtemp(prefix="dnf-", dir="/tmp"))  # ipc socket paths are limited to ~100 bytes
    run = LiveRun(run_dir, tmp).start(args)
    victim, deadline, t0 = settings.victim, time.monotonic() + settings.timeout_s, time.monotonic()
    row: dict[str, Any] = {"recipe": Path(settings.recipe).stem, "seed": seed, "case": case}
    hit_at = int(settings.at * steps)
    try:
        run.wait_until(lambda: run.step(victim) >= int(STRAY_MARKS[0] * steps), deadline)
        if case == "stray":
            for mark in STRAY_MARKS:
                run.wait_until(lambda m=mark: run.step(victim) >= int(m * steps), deadline, sample=True)
                push_stray([f"ipc://{path}" for path in run.sockets()], stray_frames(victim, "?"))
        elif case in ("kill", "kill-twice", "resume"):
            run.wait_until(lambda: run.step(victim) >= hit_at, deadline, sample=True)
            if case == "resume":
                run.proc.send_signal(signal.SIGTERM)
                run.proc.wait(timeout=120)
                run = LiveRun(run_dir, tmp).start(["resume", str(run_dir)])
            else:
                neighbours = [n for n in run.pids() if n not in (victim, "env")]
                before = {n: run.step(n) for n in neighbours}
                dead = run.pids().get(victim)
                _kill(dead)
                run.wait_until(lambda: run.pids().get(victim, dead) != dead, deadline)
                row["neighbour_steps_down"] = {n: run.step(n) - before[n] for n in neighbours}
                if case == "kill-twice":
                    back = run.step(victim)
                    run.wait_until(lambda: run.step(victim) > back, time.monotonic() + 120)
                    second = _kill(run.pids().get(victim))
                    run.proc.wait(timeout=120)
                    row["fail_after_s"] = round(time.monotonic() - second, 1)
        run.wait_until(lambda: False, deadline, sample=True)  # to the end
        run.proc.wait(timeout=60)
    finally:
        if run.alive():
            run.proc.kill()
        row["sockets_left"] = len(run.sockets())
        shutil.rmtree(tmp, ignore_errors=True)
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    restarts = summary.get("restarts", [])
    row.update(status=summary.get("status", "missing"), test_error=summary.get("eval", {}).get("test_error"),
               restarts=len(restarts), wall_s=round(time.monotonic() - t0, 1),
               rss_growth_mb=run.rss_growth_mb() if case in ("clean", "stray") else None,
               rejected=sum(e["count"] for by in summary.get("rejected", {}).values() for e in by.values()))
    if restarts:
        row.update(down_s=restarts[0].get("down_s"), steps_lost=restarts[0].get("steps_lost"))
    return row


def bench_faults(seeds: Sequence[int], cases: Sequence[str], settings: Settings, out: Path) -> list[dict[str, Any]]:
    """Every case of every seed, one after another (two runs at once would distort the timings they record)."""
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise ValueError(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    if not 0 < settings.at < 1:
        raise ValueError(f"--at must lie between 0 and 1, got {settings.at}")
    recipe, _ = prepare(settings.recipe, [*settings.overrides, f"run.checkpoint_every={settings.checkpoint_every}"])
    steps = recipe["run"]["steps"]
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        clean: float | None = None
        for case in cases:
            run_dir = out / f"{case}-seed{seed}"
            if run_dir.exists():
                raise ValueError(f"{run_dir} exists: a run folder is never reused")
            if not settings.quiet:
                print(f"[faults] seed {seed}: {case} -> {run_dir}", flush=True)
            row = _run_case(case, seed, steps, settings, run_dir)
            if case == "clean":
                clean = row["test_error"]
            if clean is not None and row["test_error"] is not None:
                row["delta"] = round(row["test_error"] - clean, 2)
            if not settings.quiet:
                print(f"[faults] seed {seed}: {case}: {row['status']}, test error {row['test_error']}", flush=True)
            rows.append(row)
    return rows
