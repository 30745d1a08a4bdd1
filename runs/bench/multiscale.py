"""``bench multiscale``: where a multi-timescale controller's time goes, per environment step.

Why: DNI can only beat backprop's wall-clock if the work it adds (the fast agent's synthesizer M) costs less
than the waiting it removes. Each recipe runs for the same number of steps, one after the other in one
invocation, while a sampler reads every process's CPU seconds; per step we get the wall time (steady state,
the top level's rate, no evaluation passes) and each process's CPU time. From these, two floors for the
step time of a system whose agents never wait: on this machine, ``max(busiest process, all processes /
cores)``; with a core per process, the busiest process. Ratios are against the first recipe (backprop). The floors
count each process as one thread: they do not bound a process whose M learns on a thread of its own
(``learner = "thread"``), which can use two cores.
``work_ms_<agent>`` (busy x ms per step) is what an agent computes per step, without polling or waiting: the
slow level's work per step against the fast level's says how far the system is in the regime where hierarchies pay.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..execute import plan_recipe
from ..recipe import apply_overrides, read_recipe
from .compute import RECIPES
from .runner import RunResult, run_recipe
from .table import Row

DEFAULT_RECIPES = tuple(str(RECIPES / f"multiscale-{m}.toml") for m in ("backprop", "dni", "cdni"))
WARM_FRAC = 0.3  # the first 30 % of the top level's reporting span is start-up


def bench_recipe(path: str, steps: int, overrides: Sequence[str] = ()) -> dict:
    """The recipe at ``path`` with ``overrides``, for ``steps`` steps, no evaluation, frequent metric rows."""
    recipe = apply_overrides(read_recipe(path), list(overrides))
    run = recipe.setdefault("run", {})
    run.update(steps=steps, eval_every=0, metrics_every=max(10, steps // 200), name=f"bench-{Path(path).stem}")
    return recipe


def measure(res: RunResult, levels: Sequence[str]) -> Row:
    """Steady-state ms per step of the top level (the last of ``levels``), and CPU ms per step of each
    process over the same span."""
    top = levels[-1]
    steady = res.steady_cpu(top, key="step", warm_frac=WARM_FRAC)
    if steady is None:
        raise RuntimeError(f"{res.run_dir}: too few metric rows from {top!r} for a steady state; raise --steps")
    first, last, cpu = steady
    steps, seconds = last["step"] - first["step"], last["time"] - first["time"]
    cpu_ms = {name: 1000 * s / steps for name, s in sorted(cpu.items())}
    row: Row = {"ms_per_step": 1000 * seconds / steps, **{f"cpu_ms_{n}": ms for n, ms in cpu_ms.items()}}
    row["cpu_ms_total"] = sum(cpu_ms.values())
    busiest = max(cpu_ms.values(), default=0.0)
    row["floor_ms_here"] = max(busiest, row["cpu_ms_total"] / len(os.sched_getaffinity(0)))
    row["floor_ms_core_each"] = busiest
    for name in levels:  # busy: the fraction of wall time an agent computes (not polling, not waiting)
        busy = [r["busy"] for r in res.metrics[name] if "busy" in r and r["time"] >= first["time"]]
        row[f"busy_{name}"] = sum(busy) / len(busy) if busy else None
        row[f"work_ms_{name}"] = row["ms_per_step"] * row[f"busy_{name}"] if busy else None
    return row


def bench_multiscale(recipes: Sequence[str] = DEFAULT_RECIPES, steps: int = 4000, overrides: Sequence[str] = (),
                     out: Path | None = None) -> list[Row]:
    """One row per recipe; ``ratio`` and the floors' ratios are against the first recipe's ms per step."""
    out = Path(out or tempfile.mkdtemp(prefix="dnilab-bench-multiscale-"))
    built = [(path, bench_recipe(path, steps, overrides)) for path in recipes]
    for _, recipe in built:  # a bad recipe or override is rejected before the first one runs
        plan_recipe(copy.deepcopy(recipe))
    rows: list[Row] = []
    for path, recipe in built:
        res = run_recipe(recipe, out / Path(path).stem)
        rows.append({"recipe": Path(path).stem, "steps": steps, **measure(res, list(recipe["levels"]))})
    base = rows[0]["ms_per_step"] if rows else 0.0
    for row in rows:
        row["ratio"] = row["ms_per_step"] / base if base else None
        row["floor_ratio_here"] = row["floor_ms_here"] / base if base else None
        row["floor_ratio_core_each"] = row["floor_ms_core_each"] / base if base else None
    return rows


def columns(rows: Sequence[Row]) -> list[str]:
    """Fixed columns around the per-process ones (their names come from the recipes' levels)."""
    dynamic = list(dict.fromkeys(k for r in rows for k in r if k.startswith(("cpu_ms_", "work_ms_"))
                                 and k != "cpu_ms_total"))
    return ["recipe", "steps", "ms_per_step", "ratio", *[c for c in dynamic if c.startswith("cpu_ms_")],
            "cpu_ms_total", "floor_ms_here", "floor_ratio_here", "floor_ratio_core_each",
            *[c for c in dynamic if c.startswith("work_ms_")]]
