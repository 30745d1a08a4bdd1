"""``bench compute``: real compute on this machine's cores, the MNIST FCN.

1. The 4-layer FCN split into 2 agents (first layer | other three: the most even split), cdni edges
   against backprop edges (ideal 2x for halves of equal cost on 2 cores: unlocked, both compute at once;
   locked, they take turns; for this network's uneven halves plus the synthesizer's cost, ~1.33x).
2. The 4-agent cdni FCN (one agent per layer, ``runs/mnist-fcn4-cdni.toml``) in separate processes
   against the same recipe with every agent in one process (``run.launcher = "inproc"``), the one
   process with 1 torch thread and with torch's default: the processes must pay for their messages.

Rates are the head's steady-state batches/s (start-up and final evaluation excluded); each row also gives every
agent process's CPU ms per batch over the same span, so that an unlocked pair shows which agent sets its pace.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agents import pick_device

from ..recipe import apply_overrides, read_recipe
from .runner import RunResult, run_recipe, span_rate
from .stacks import split_fcn
from .table import Row

RECIPES = Path(__file__).resolve().parent.parent
BATCH = 256
# The most even contiguous split of the FCN: the 784-wide first layer alone against the other three
# (~600k vs ~400k multiply-adds per sample with its cDNI synthesizer); a 2+2 split is ~930k vs ~200k.
SPLIT = [1, 3]


def calibrate(seconds: float = 1.0) -> float:
    """Batches/s of the whole FCN in a plain one-thread loop here and now: sizes the step budgets, so that a
    run measures about the intended time whatever the load on the machine."""
    from .fused import plain_loop

    return plain_loop(seconds, threads=1, warmup_s=0.3) / BATCH


def mnist_recipe(name: str, steps: int, device: str = "auto", edge: str = "cdni",
                 groups: list[int] | None = None, launcher: str = "local",
                 extra: list[str] | None = None, cap_s: float = 300.0
                 ) -> tuple[dict[str, Any], dict[str, list[dict]] | None]:
    """``runs/mnist-fcn4-cdni.toml`` with ``edge`` edges for a steady-state measurement of ``steps`` batches
    (a step budget, not a time budget: agents may start seconds after the env on a busy machine);
    ``groups`` splits the FCN into fewer agents (``[2, 2]``: two agents of two layers). Returns the recipe
    and the agents' stacks. ``cap_s`` caps the wall time of the training (a run that slow is still measured
    from its metric rows)."""
    recipe = read_recipe(RECIPES / "mnist-fcn4-cdni.toml")
    recipe = apply_overrides(recipe, [
        f"run.name={name!r}", f"run.steps={steps}", f"run.seconds={cap_s}", "run.eval_every=0",
        "run.metrics_every=10", f"run.launcher={launcher!r}", f"run.device={device!r}",
        'env.eval={split="test", limit=512}', f"defaults.edge.backward={edge!r}", *(extra or [])])
    stacks = None
    if groups is not None:
        del recipe["model"]
        agents, edges, stacks = split_fcn(groups)
        recipe["agents"], recipe["edges"] = agents, edges
    return recipe, stacks


@dataclass
class Measured:
    """One run: the head's steady batches/s and each node process's CPU ms per batch over the same span (empty
    for an inproc run, whose agents share the bench's process): which agent sets an unlocked pair's pace."""

    rate: float
    cpu_ms: dict[str, float]


def _measure(res: RunResult) -> Measured:
    steady = res.steady_cpu("head")
    if steady is None:
        return Measured(0.0, {})
    first, last, cpu = steady
    batches = last["steps"] - first["steps"]
    return Measured(span_rate(first, last), {n: 1000 * s / batches for n, s in sorted(cpu.items())} if batches else {})


def _run(recipe: tuple[dict, Any], out: Path, threads: int | None = None) -> Measured:
    """One run; ``threads`` sets torch's threads here (inproc agents run in this process)."""
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _measure(run_recipe(copy.deepcopy(recipe[0]), out, recipe[1]))
    finally:
        torch.set_num_threads(old)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name).strip("-")


def compare(name: str, candidate: tuple[dict, Any] | Measured, baseline: tuple[dict, Any], out: Path, target: float,
            params: dict[str, Any], baseline_threads: int | None = None) -> Row:
    """Run baseline then candidate (or take the candidate's measurement); a row with both and their ratio."""
    b = _run(baseline, out / f"{_slug(name)}-baseline", baseline_threads)
    c = candidate if isinstance(candidate, Measured) else _run(candidate, out / f"{_slug(name)}-candidate")
    ratio = c.rate / b.rate if b.rate else 0.0
    return {"case": name, **params, "baseline_threads": baseline_threads, "batches_per_s": c.rate,
            "baseline_batches_per_s": b.rate, "samples_per_s": c.rate * BATCH, "ratio": ratio, "target": target,
            "met": ratio >= target, "ms_per_batch": 1000 / c.rate if c.rate else None,
            "cpu_ms_busiest": max(c.cpu_ms.values(), default=None), "cpu_ms_per_batch": c.cpu_ms,
            "baseline_cpu_ms_per_batch": b.cpu_ms}


def bench_compute(seconds: float = 10.0, device: str = "auto", out: Path | None = None,
                  rate: float | None = None) -> list[Row]:
    """Two rows; each run trains about ``seconds`` worth of batches at the calibrated one-thread rate."""
    out = Path(out or tempfile.mkdtemp(prefix="dnilab-bench-compute-"))
    steps = max(60, int(seconds * (rate or calibrate())))
    dev = {"device": pick_device(0, device), "steps": steps}
    cap = 10 * seconds + 120  # a safety cap only: agents may start long after the env on a busy machine
    rows = [
        compare("2 agents (1+3 layers): cdni vs backprop",
                mnist_recipe("fcn4-2agents-cdni", steps, device, "cdni", SPLIT, cap_s=cap),
                mnist_recipe("fcn4-2agents-backprop", steps, device, "backprop", SPLIT, cap_s=cap),
                out, 1.5, {"agents": 2, "candidate": "cdni, processes", "baseline": "backprop, processes", **dev}),
    ]
    local = _run(mnist_recipe("fcn4-cdni-local", steps, device, "cdni", cap_s=cap), out / "fcn4-cdni-local")
    inproc = mnist_recipe("fcn4-cdni-inproc", steps, device, "cdni", launcher="inproc", cap_s=cap)
    for threads in sorted({1, torch.get_num_threads()}):
        rows.append(compare(f"4 agents cdni: processes vs one process ({threads} torch threads)", local, inproc,
                            out, 1.2, {"agents": 4, "candidate": "cdni, processes",
                                       "baseline": "cdni, one process", **dev}, baseline_threads=threads))
    return rows


COLUMNS = ("case", "device", "steps", "baseline_threads", "batches_per_s", "baseline_batches_per_s", "samples_per_s",
           "ratio", "target", "met", "ms_per_batch", "cpu_ms_busiest")
