"""Run one recipe (a dict) for a benchmark and read back steady-state rates and resource samples.

Like ``runs.execute.execute`` but without progress display or plots, with the option to swap agents for
``StackAgent``s, and with a sampler thread that records RSS and CPU time of every node process.
Throughput is measured in steady state from the metric rows (start-up and the final evaluation excluded).
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import zmq

from agents import ENV, NodeSpec, Supervisor, cores_per_agent

from ..execute import make_launcher, node_specs_for, plan_recipe
from ..records import RunRecords, new_run_dir, read_jsonl
from .stacks import FACTORY

SUPERVISOR = "supervisor"


class Sampler(threading.Thread):
    """Every ``every_s``: RSS and CPU seconds of each node process (pids from meta.json) and of us."""

    def __init__(self, run_dir: Path, every_s: float = 0.2, t0: float | None = None) -> None:
        super().__init__(daemon=True, name="bench-sampler")
        self.run_dir = run_dir
        self.t0 = time.monotonic() if t0 is None else t0  # the run records' clock, to line up with metrics
        self.every_s = every_s
        self.stopped = threading.Event()
        self.samples: list[tuple[float, dict[str, tuple[float, float]]]] = []  # (t, name -> (rss MB, cpu s))
        self._procs: dict[str, psutil.Process] = {SUPERVISOR: psutil.Process()}

    def _pids(self) -> None:
        try:
            agents = json.loads((self.run_dir / "meta.json").read_text()).get("agents", {})
        except (OSError, ValueError):
            return
        for name, info in agents.items():
            pid = info.get("pid")
            if name not in self._procs and pid and pid != os.getpid():
                try:
                    self._procs[name] = psutil.Process(pid)
                except psutil.NoSuchProcess:
                    pass

    def sample(self) -> None:
        self._pids()
        row: dict[str, tuple[float, float]] = {}
        for name, proc in list(self._procs.items()):
            try:
                with proc.oneshot():
                    cpu = proc.cpu_times()
                    row[name] = (proc.memory_info().rss / 2**20, cpu.user + cpu.system)
            except psutil.Error:
                continue
        self.samples.append((time.monotonic() - self.t0, row))

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            self.sample()

    def peak_rss(self) -> dict[str, float]:
        peak: dict[str, float] = {}
        for _, row in self.samples:
            for name, (rss, _) in row.items():
                peak[name] = max(peak.get(name, 0.0), rss)
        return peak

    def stop(self) -> None:
        """Stop sampling, with one last sample so that even a very short run has one."""
        self.stopped.set()
        self.join(2)
        self.sample()


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    sampler: Sampler
    metrics: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def rate(self, node: str = "head", warm_frac: float = 0.3, key: str = "steps") -> float:
        """Steady-state steps/s of ``node``: rows after the first ``warm_frac`` of its reporting span."""
        rows = [r for r in self.metrics.get(node, []) if key in r]
        return steady_rate(rows, warm_frac, key)

    def cpu_by_node(self, t_from: float, t_to: float) -> dict[str, float]:
        """CPU seconds each node process (not the supervisor) used between two sampler times."""
        def at(t: float) -> dict[str, float]:
            best = min(self.sampler.samples, key=lambda s: abs(s[0] - t), default=(0.0, {}))
            return {n: c for n, (_, c) in best[1].items() if n != SUPERVISOR}
        a, b = at(t_from), at(t_to)
        return {n: b[n] - a.get(n, b[n]) for n in b}

    def steady_cpu(self, node: str = "head", key: str = "steps", warm_frac: float = 0.3
                   ) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]] | None:
        """``node``'s steady span (its first and last row, as ``rate`` uses them) and each node process's CPU
        seconds over it; None without a span. What the benches divide by the steps done in between."""
        span = steady_span([r for r in self.metrics.get(node, []) if key in r], warm_frac, key)
        if span is None:
            return None
        first, last = span
        return first, last, self.cpu_by_node(first["time"], last["time"])


def steady_span(rows: list[dict[str, Any]], warm_frac: float = 0.3,
                key: str = "steps") -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The first row after the warm-up fraction of the span and the last row that still made progress (an
    agent's last row, sent when it stops, repeats its final count); None with fewer than two such rows."""
    while len(rows) >= 2 and rows[-1][key] <= rows[-2][key]:
        rows = rows[:-1]
    if len(rows) < 2:
        return None
    t_first, t_last = rows[0]["time"], rows[-1]["time"]
    steady = [r for r in rows if r["time"] >= t_first + warm_frac * (t_last - t_first)]
    if len(steady) < 2:
        steady = rows[-2:]
    return steady[0], steady[-1]


def steady_rate(rows: list[dict[str, Any]], warm_frac: float = 0.3, key: str = "steps") -> float:
    """Rate of ``key`` over ``steady_span``; 0.0 without one."""
    span = steady_span(rows, warm_frac, key)
    return span_rate(*span, key) if span is not None else 0.0


def span_rate(first: dict[str, Any], last: dict[str, Any], key: str = "steps") -> float:
    """``key`` per second between two metric rows."""
    return (last[key] - first[key]) / max(last["time"] - first["time"], 1e-9)


def pin_agents(specs: list[NodeSpec]) -> None:
    """Give every agent (not the environment node) its own cores, and as many torch threads as cores."""
    agents = [spec for spec in specs if spec.name != ENV]
    for i, spec in enumerate(agents):
        spec.cpus = cores_per_agent(i, len(agents))
        spec.threads = len(spec.cpus)


def run_recipe(recipe: dict[str, Any], out: Path, stacks: dict[str, list[dict[str, Any]]] | None = None,
               sample_s: float = 0.2, pin: bool = False, patch: Callable[[NodeSpec], None] | None = None
               ) -> RunResult:
    """Run ``recipe`` (any ``run.kind``) to the end in ``out``; raise RuntimeError if it did not complete.
    ``pin`` pins each agent process to its own cores; ``patch`` may change each node's spec before it starts."""
    recipe, plan = plan_recipe(copy.deepcopy(recipe), default_name="bench")
    run_dir = new_run_dir(recipe["run"]["name"], out)
    records = RunRecords(run_dir, recipe, None)
    specs = node_specs_for(recipe, plan, run_dir)
    for spec in specs:
        if stacks and spec.name in stacks:
            spec.factory = FACTORY
            spec.kwargs["layers"] = stacks[spec.name]
        if patch is not None:
            patch(spec)
    if pin and recipe["run"]["launcher"] != "inproc":
        pin_agents(specs)
    ctx = zmq.Context()
    launcher = make_launcher(recipe, ctx)
    # a generous start-up limit: 17 processes importing torch on 2 busy cores take minutes
    supervisor = Supervisor(specs, launcher, records, uuid.uuid4().hex[:8], ctx=ctx, start_timeout_s=900)
    sampler = Sampler(run_dir, sample_s, records.t0)
    sampler.start()
    try:
        outcome = supervisor.run()
    finally:
        sampler.stop()
        ctx.destroy(linger=0)
    summary = records.finish(outcome.status, outcome.error, {"steps": recipe["run"]["steps"]})
    if outcome.status != "completed":
        raise RuntimeError(f"benchmark run {recipe['run']['name']!r} {outcome.status}: {outcome.error}")
    metrics = {p.stem: read_jsonl(p) for p in (run_dir / "metrics").glob("*.jsonl")}
    return RunResult(run_dir, summary, sampler, metrics)
