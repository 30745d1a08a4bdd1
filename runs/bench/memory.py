"""``bench memory``: peak RSS of every agent process and of the supervisor, and proof that buffers are
bounded: with one agent slowed 10x, nobody's memory grows (queues stay within credits and HWMs; stores
drop and count the oldest entries instead of growing).

Rows carry ``ratio`` = peak RSS / the 400 MB budget of a CPU agent (<= 1 meets it), and for the slowed
run ``ratio`` = RSS at the end / RSS after warm-up of the same process (about 1 when nothing grows).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .compute import calibrate, mnist_recipe
from .pipeline import pipeline_recipe
from .runner import SUPERVISOR, RunResult, run_recipe
from .table import Row

BUDGET_MB = 400.0
GROWTH_TARGET = 1.1   # end / after-warm-up RSS of any process with a 10x slowed agent


def peak_rows(config: str, res: RunResult, collapse: bool = False) -> list[Row]:
    """One row per process, or (``collapse``) the largest agent, the env and the supervisor."""
    peaks = res.sampler.peak_rss()
    if collapse:
        agent_peaks = {n: p for n, p in peaks.items() if n not in (SUPERVISOR, "env")}
        top = max(agent_peaks, key=agent_peaks.get, default=None)
        keep = {n: p for n, p in peaks.items() if n in (SUPERVISOR, "env")}
        if top is not None:
            keep[f"largest of {len(agent_peaks)} agents ({top})"] = agent_peaks[top]
        peaks = keep
    rows = []
    for name, peak in sorted(peaks.items()):
        agent = name not in (SUPERVISOR, "env")
        rows.append({"config": config, "process": name, "peak_rss_mb": peak, "budget_mb": BUDGET_MB,
                     "ratio": peak / BUDGET_MB, "target": 1.0 if agent else None,
                     "met": (peak <= BUDGET_MB) if agent else None})
    return rows


def growth_rows(config: str, res: RunResult, counters: dict[str, dict]) -> list[Row]:
    """Per process: peak RSS in the last third of the run against the peak in the middle third."""
    samples = res.sampler.samples
    if len(samples) < 6:
        return []
    third = len(samples) // 3
    middle, last = samples[third:2 * third], samples[2 * third:]

    def peak(part: list, name: str) -> float:
        return max((row[name][0] for _, row in part if name in row), default=0.0)

    rows = []
    for name in sorted({n for _, row in samples for n in row}):
        early, late = peak(middle, name), peak(last, name)
        if not early or not late:
            continue
        ratio = late / early
        stats = counters.get(name, {})
        dropped = sum(v for k, v in stats.items() if k.endswith(("dropped", "skipped")) and isinstance(v, int | float))
        rows.append({"config": config, "process": name, "rss_early_mb": early, "rss_end_mb": late,
                     "growth_mb": late - early, "ratio": ratio, "target": GROWTH_TARGET,
                     "met": ratio <= GROWTH_TARGET, "dropped_or_skipped": dropped,
                     "seconds": samples[-1][0] - samples[third][0]})
    return rows


def bench_memory(seconds: float = 8.0, out: Path | None = None, rate: float | None = None,
                 agents: int = 16) -> tuple[list[Row], list[Row]]:
    """(peak rows for the default recipe and the N-agent pipeline, growth rows with a 10x slowed agent)."""
    out = Path(out or tempfile.mkdtemp(prefix="dnilab-bench-memory-"))
    rate = rate or calibrate()
    steps = max(60, int(seconds * rate))
    default = run_recipe(mnist_recipe("memory-default", steps, "cpu", "cdni")[0], out / "default")
    peaks = peak_rows("mnist-fcn4-cdni (default)", default)
    pipe = run_recipe(pipeline_recipe(agents, 5.0, "dni", max(3.0, seconds / 2)), out / f"pipeline-n{agents}")
    peaks += peak_rows(f"pipeline N={agents} dni", pipe, collapse=True)
    # the slowed agent runs at ~1/10 of the rate: give it the same wall time as the default run, twice over
    slowed, _ = mnist_recipe("memory-slowed", max(60, steps // 3), "cpu", "cdni",
                             extra=["overrides.l2.slowdown=10.0"])
    res = run_recipe(slowed, out / "slowed")
    growth = growth_rows("mnist-fcn4-cdni, l2 slowed 10x", res, res.summary.get("agents", {}))
    return peaks, growth


PEAK_COLUMNS = ("config", "process", "peak_rss_mb", "budget_mb", "ratio", "target", "met")
GROWTH_COLUMNS = ("config", "process", "rss_early_mb", "rss_end_mb", "growth_mb", "ratio", "target", "met",
                  "dropped_or_skipped", "seconds")
