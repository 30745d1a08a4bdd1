"""``bench floor``: the host time of one agent step when the module costs nothing, and where it goes.

A chain of N agents with 16-unit linear modules on batches of 8 (``bench pipeline``'s recipe with no simulated
device time): every step is framework work only (the forward, M's prediction, the backward and update of tiny
modules, the messages, the bookkeeping). Measured twice: plain, for the floor (each agent process's CPU ms per
step over the head's steady span), and under cProfile inside every agent process, for the shares (cProfile slows
Python code, so its absolute times are not the floor). A stage whose compute is several times this floor keeps
the messages from setting the pace (``bench speedup`` reports its stages' ms beside it).
"""

from __future__ import annotations

import cProfile
import pstats
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from agents import FeedForwardAgent, NodeSpec

from .pipeline import pipeline_recipe
from .runner import run_recipe
from .table import Row

FACTORY = "runs.bench.floor:ProfiledAgent"
# where a function's own time is counted: (file fragment, function-name fragment or "") -> part; first match wins
PARTS = (
    (("wire.py", "encode"), "send: encode"), (("wire.py", "_tensor_frame"), "send: encode"),
    (("wire.py", "_header_prefix"), "send: encode"), (("transport.py", "send"), "send: zmq"),
    (("wire.py", ""), "receive: decode + validate"), (("transport.py", "_recv_frames"), "receive: zmq"),
    (("transport.py", "recv"), "receive: zmq"), (("transport.py", ""), "receive: zmq"),
    (("socket.py", "send"), "send: zmq"), (("socket.py", "recv"), "receive: zmq"),
    (("{method 'poll'", ""), "waiting (poll)"), (("poll", ""), "waiting (poll)"),
    (("synthesizers.py", ""), "synthesizers (M, I)"), (("synthetic_input.py", ""), "synthesizers (M, I)"),
    (("gradient.py", ""), "synthesizers (M, I)"), (("quality.py", ""), "synthesizers (M, I)"),
    (("optim", ""), "optimizer step"), (("adam", ""), "optimizer step"),
    (("run_backward", ""), "autograd backward"), (("autograd", ""), "autograd backward"),
    (("feedforward.py", "_report"), "metrics"), (("feedforward.py", "counters"), "metrics"),
    (("node.py", "tell"), "metrics"),
    (("torch", ""), "torch forward + other ops"), (("built-in method torch", ""), "torch forward + other ops"),
    (("feedforward.py", ""), "agent bookkeeping"), (("buffer.py", ""), "agent bookkeeping"),
    (("node.py", ""), "agent bookkeeping"),
)


class ProfiledAgent(FeedForwardAgent):
    """A FeedForwardAgent that profiles its own process from ``start`` to ``on_stop`` (stats in the run folder)."""

    def start(self, rt) -> None:  # noqa: ANN001 - NodeRuntime
        self.profiler = cProfile.Profile()
        super().start(rt)
        self.profiler.enable()

    def on_stop(self) -> dict[str, Any]:
        self.profiler.disable()
        if self.run_dir is not None:
            self.profiler.dump_stats(str(self.run_dir / f"profile-{self.name}.pstats"))
        return super().on_stop()


def part_of(file: str, func: str) -> str:
    """The part of an agent step a profiled function belongs to (``PARTS``), "other" if none."""
    where = f"{file}:{func}"
    for (in_file, in_func), part in PARTS:
        if in_file in where and in_func in func:
            return part
    return "other"


def shares(stats_path: Path, steps: int) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """Own-time ms per step by part, and the 12 costliest functions (ms per step), from one agent's profile."""
    stats = pstats.Stats(str(stats_path))
    by_part: dict[str, float] = defaultdict(float)
    funcs = []
    for (file, line, func), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        ms = 1000 * tottime / max(steps, 1)
        by_part[part_of(file, func)] += ms
        funcs.append((f"{Path(file).name}:{line}:{func}", ms))
    funcs.sort(key=lambda f: -f[1])
    return dict(by_part), funcs[:12]


def floor_recipe(n: int, mode: str, steps: int, name: str) -> dict[str, Any]:
    """``bench pipeline``'s chain (16 units, batches of 8) with no simulated device time and a step budget."""
    recipe = pipeline_recipe(n, 1.0, mode, 1.0)
    recipe["defaults"]["agent"]["stage_ms"] = 0.0
    recipe["run"].update(name=name, steps=steps, seconds=600.0, metrics_every=max(1, steps // 20))
    return recipe


def bench_floor(agents: int = 2, modes: tuple[str, ...] = ("dni", "backprop"), steps: int = 2000,
                out: Path | None = None, profile: bool = True) -> tuple[list[Row], list[Row]]:
    """Per mode: each agent's CPU ms per step unprofiled (the floor) and, with ``profile``, its profile's shares."""
    out = Path(out or tempfile.mkdtemp(prefix="dnilab-bench-floor-"))
    rows: list[Row] = []
    parts: list[Row] = []
    for mode in modes:
        res = run_recipe(floor_recipe(agents, mode, steps, f"floor-{mode}-n{agents}"), out / f"{mode}-n{agents}",
                         pin=True)
        steady = res.steady_cpu("head")
        if steady is None:
            continue
        first, last, cpu = steady
        done = last["steps"] - first["steps"]
        rate = done / max(last["time"] - first["time"], 1e-9)
        for name, seconds in sorted(cpu.items()):
            if name == "env":
                continue
            rows.append({"mode": mode, "agents": agents, "agent": name, "steps_per_s": rate,
                         "cpu_ms_per_step": 1000 * seconds / max(done, 1), "ms_per_step": 1000 / rate if rate else None,
                         "ratio": 1.0})
        if not profile:
            continue

        def patch(spec: NodeSpec) -> None:
            if spec.factory == "agents:FeedForwardAgent":
                spec.factory = FACTORY

        prof = run_recipe(floor_recipe(agents, mode, steps, f"floor-{mode}-n{agents}-profiled"),
                          out / f"{mode}-n{agents}-profiled", pin=True, patch=patch)
        for path in sorted(prof.run_dir.glob("profile-*.pstats")):
            name = path.stem.removeprefix("profile-")
            done = max((r.get("steps", 0) for r in prof.metrics.get(name, [])), default=0)
            by_part, top = shares(path, done)
            busy = sum(ms for part, ms in by_part.items() if part != "waiting (poll)")
            for part, ms in sorted(by_part.items(), key=lambda p: -p[1]):
                parts.append({"mode": mode, "agent": name, "part": part, "ms_per_step": ms,
                              "share_of_busy": ms / busy if part != "waiting (poll)" and busy else None})
            for func, ms in top:
                parts.append({"mode": mode, "agent": name, "part": f"  {func}", "ms_per_step": ms,
                              "share_of_busy": None})
    return rows, parts


COLUMNS = ("mode", "agents", "agent", "steps_per_s", "ms_per_step", "cpu_ms_per_step")
PART_COLUMNS = ("mode", "agent", "part", "ms_per_step", "share_of_busy")
