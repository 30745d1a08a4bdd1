"""``bench pipeline``: N agents in a chain that sleep d ms per forward and per backward (a stand-in for a
GPU kernel that leaves the CPU free), with update-locked, update-unlocked and completely unlocked edges.

Locked (backprop) a batch costs N (f + b); unlocked (dni) the chain is a pipeline and a batch costs
f + b, so the ideal speed-up is N. Each row is measured side by side with its backprop baseline in the
same invocation. Where the speed-up falls short, ``cpu_util`` (CPU seconds of all nodes per second of
wall time, over the machine's cores) and ``cpu_ms_per_step`` say whether the real work of the agents
(tiny modules, messages, Python) or the 2 shared cores are the limit.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .runner import RunResult, run_recipe
from .table import Row

MODES = {  # name -> (defaults.edge backward, forward)
    "backprop": ("backprop", "real"),
    "dni": ("dni", "real"),
    "unlock": ("dni", "synthetic"),
}
TARGET_EFFICIENCY = 0.85
FEATURES, BATCH = 16, 8
WINDOW = 4  # steps in flight per edge: each edge has its own credits, so a few fill any chain


def ideal_rate(n: int, stage_ms: float, mode: str) -> float:
    """Steps/s with zero overhead: locked, one batch per N (f + b); unlocked, one per f + b."""
    return 1000.0 / (2 * stage_ms) / (n if mode == "backprop" else 1)


def pipeline_recipe(n: int, stage_ms: float, mode: str, seconds: float) -> dict[str, Any]:
    """The budget is a step count worth ``seconds`` at the ideal rate (so a slow start-up on a busy machine
    does not eat the measurement), capped at a wall time of a few times that."""
    backward, forward = MODES[mode]
    rate = ideal_rate(n, stage_ms, mode)
    steps = max(20, int(rate * seconds))
    edge: dict[str, Any] = {"backward": backward, "forward": forward, "synthesizer": {"hidden": [], "lr": 1e-3}}
    if forward == "synthetic":
        edge["input_synthesizer"] = {"hidden": [], "lr": 1e-3}
    return {
        "run": {"name": f"pipeline-{mode}-n{n}-d{stage_ms:g}", "steps": steps,
                "seconds": 10 * seconds + 120,  # a safety cap only: agents may start long after the env
                "eval_every": 0, "window": WINDOW,
                "metrics_every": max(1, min(int(rate / 4), steps // 10))},
        "env": {"id": "runs.bench.envs:RandomBatches", "kwargs": {"batch_size": BATCH, "features": FEATURES},
                "eval": {"split": "test"}},
        "model": {"kind": "fcn", "depth": n, "hidden": FEATURES},
        "defaults": {"agent": {"stage_ms": stage_ms, "optimizer": {"name": "sgd", "lr": 0.01}}, "edge": edge},
    }


def measure_seconds(n: int, stage_ms: float, steps: int = 12, min_seconds: float = 3.0) -> float:
    """Long enough for ``steps`` locked batches, and at least ``min_seconds``; every mode gets the same."""
    return max(min_seconds, steps * n * 2 * stage_ms / 1000)


def _measure(res: RunResult) -> dict[str, float]:
    """Steady-state rate of the slowest agent (every agent must train every batch), CPU use meanwhile."""
    agents = [name for name in res.metrics if name not in ("env", "eval")]
    rates = {a: res.rate(a) for a in agents}
    rate = min(rates.values()) if rates else 0.0
    steady = res.steady_cpu("head")  # the window the rates use
    t0, t1 = (steady[0]["time"], steady[1]["time"]) if steady else (0.0, 0.0)
    cpu = sum(steady[2].values()) if steady and t1 > t0 else 0.0
    cores = len(os.sched_getaffinity(0))
    steps = rate * (t1 - t0)
    return {"steps_per_s": rate, "cpu_util": cpu / max(t1 - t0, 1e-9) / cores,
            "cpu_ms_per_step": 1000 * cpu / steps if steps else 0.0}


def bench_pipeline(agents: Sequence[int] = (2, 4, 8, 16), stage_ms: Sequence[float] = (5, 20),
                   modes: Sequence[str] = ("dni", "unlock"), steps: int = 12, min_seconds: float = 3.0,
                   out: Path | None = None) -> list[Row]:
    """One row per (N, d, mode) against backprop at the same (N, d), measured one right after the other."""
    out = Path(out or tempfile.mkdtemp(prefix="dnilab-bench-pipeline-"))
    rows: list[Row] = []
    for d in stage_ms:
        for n in agents:
            seconds = measure_seconds(n, d, steps, min_seconds)
            base = _measure(run_recipe(pipeline_recipe(n, d, "backprop", seconds), out / f"bp-n{n}-d{d:g}"))
            ideal_locked = 1000.0 / (n * 2 * d)
            rows.append(_row(n, d, "backprop", base, base, 1.0, ideal_locked))
            for mode in modes:
                m = _measure(run_recipe(pipeline_recipe(n, d, mode, seconds), out / f"{mode}-n{n}-d{d:g}"))
                rows.append(_row(n, d, mode, m, base, float(n), ideal_locked))
    return rows


def _row(n: int, d: float, mode: str, m: dict[str, float], base: dict[str, float], ideal: float,
         ideal_locked: float) -> Row:
    ratio = m["steps_per_s"] / base["steps_per_s"] if base["steps_per_s"] else 0.0
    target = TARGET_EFFICIENCY * ideal if mode != "backprop" else None
    return {"agents": n, "stage_ms": d, "mode": mode, "steps_per_s": m["steps_per_s"],
            "backprop_steps_per_s": base["steps_per_s"], "ideal_locked_steps_per_s": ideal_locked,
            "ratio": ratio, "ideal": ideal, "efficiency": ratio / ideal, "target": target,
            "met": None if target is None else ratio >= target,
            "cpu_util": m["cpu_util"], "cpu_ms_per_step": m["cpu_ms_per_step"]}


COLUMNS = ("agents", "stage_ms", "mode", "steps_per_s", "backprop_steps_per_s", "ratio", "ideal", "efficiency",
           "target", "met", "cpu_util", "cpu_ms_per_step")
