"""``bench speedup``: speed at equal accuracy. A model split into N agents whose stages are big enough that compute
dominates messages, trained side by side as

- ``torch``: one-process backprop, a plain PyTorch loop of the whole model with every core the N agents get
  together (the baseline);
- ``backprop``: N agent processes, update-locked (true gradients over every edge);
- ``dni`` / ``cdni``: N agent processes, update-unlocked (synthetic gradients M(h) / M(h, y));
- ``unlock``: N agent processes, free-running complete unlock (cDNI plus synthetic inputs I(x)).

Every system sees the same data in the same order and is evaluated on the same test batches every ``eval_every``
training batches (the dnilab systems by their environment node, through the real chain; the loop in place), and
every curve's clock starts when training starts (process start-up is not counted) and includes the evaluations.
The threshold is the baseline's final accuracy; each row gives the first time a system reaches it and that time
over the baseline's own. Each agent process is pinned to its own cores (``os.sched_setaffinity``, as many torch
threads as cores), or all agents share the device given; the loop gets the union of those cores.

Models (each agent owns ``layers_per_agent`` layers, so a stage's compute stays the same as N grows):
``mlp``, MNIST through Linear-BN-ReLU layers of ``width`` units (the head agent's last layer is the classifier);
``cnn``, generated images of CIFAR's shape (``envs.ShapesImages``) through 3x3 Conv-BN-ReLU blocks whose channels
double at each 2x2 pool (one pool per agent while the maps are larger than 4x4), then the classifier.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from agents import build_optimizer, cores_per_agent, pick_device
from environments import make

from ..execute import plan_recipe
from .runner import RunResult, run_recipe
from .stacks import build_stack
from .table import Row

BASELINE = "torch"
SYSTEMS = {  # mode -> (backward, forward) of every agent-to-agent edge
    "backprop": ("backprop", "real"),
    "dni": ("dni", "real"),
    "cdni": ("cdni", "real"),
    "unlock": ("cdni", "synthetic"),
}
MODES = (BASELINE, *SYSTEMS)
MODELS = ("mlp", "cnn")
COLUMNS = ("model", "agents", "seed", "mode", "device", "threshold", "time_to_target_s", "ratio", "final_accuracy",
           "best_accuracy", "steps", "wall_s", "stage_ms", "thread_speedup", "note")


@dataclass
class Workload:
    """One model split into agents: the environment, each agent's layers and its one-module stand-in (a module of
    the stack's input and output shapes: the graph infers shapes from it), the optimizer every agent uses."""

    model: str
    env: dict[str, Any]
    stacks: list[list[dict[str, Any]]]
    standins: list[dict[str, Any]]
    optimizer: dict[str, Any]
    sg_lr: float = 1e-4
    input_synthesizer: dict[str, Any] = field(default_factory=lambda: {"hidden": [], "lr": 1e-4})
    unlock_note: str | None = None  # why complete unlock cannot run on this workload, if it cannot

    @property
    def agents(self) -> int:
        return len(self.stacks)

    @property
    def layers(self) -> list[dict[str, Any]]:
        return [layer for stack in self.stacks for layer in stack]


def mlp_workload(agents: int, width: int = 512, layers_per_agent: int = 2, batch: int = 256, eval_limit: int = 2048,
                 lr: float = 1e-4, train_limit: int | None = None) -> Workload:
    """MNIST through ``agents * layers_per_agent`` layers: Linear-BN-ReLU of ``width`` units, the last the
    classifier."""
    depth, stacks, standins = agents * layers_per_agent, [], []
    for i in range(agents):
        stack = []
        for j in range(i * layers_per_agent, (i + 1) * layers_per_agent):
            width_in = 784 if j == 0 else width
            last = j == depth - 1
            stack.append({"type": "head", "in": width_in, "classes": 10} if last
                         else {"type": "linear", "in": width_in, "out": width})
        stacks.append(stack)
        width_in = 784 if i == 0 else width
        standins.append({"type": "head", "in": width_in, "classes": 10} if i == agents - 1
                        else {"type": "linear", "in": width_in, "out": width})
    kwargs: dict[str, Any] = {"batch_size": batch}
    if train_limit:
        kwargs["limit"] = train_limit
    env = {"id": "dnilab/MNIST-v0", "kwargs": kwargs, "eval": {"split": "test", "limit": eval_limit}}
    return Workload("mlp", env, stacks, standins, {"name": "adam", "lr": lr},
                    input_synthesizer={"hidden": [1024], "lr": 1e-4})  # I(x) of runs/mnist-fcn4-unlock-cdni.toml


def cnn_workload(agents: int, channels: int = 16, layers_per_agent: int = 2, batch: int = 32, eval_examples: int = 1024,
                 lr: float = 1e-4, train_examples: int = 8192, noise: float = 4.0) -> Workload:
    """``envs.ShapesImages`` [3, 32, 32] through ``agents`` blocks of ``layers_per_agent`` 3x3 convs; a block pools
    (and the next doubles the channels) while its maps are larger than 4x4; the head block ends in the classifier."""
    stacks, standins = [], []
    c_in, size = 3, 32
    for i in range(agents):
        pool = size > 4
        c_out = channels if i == 0 else (2 * c_in if pool else c_in)
        stack = [{"type": "conv", "in_channels": c_in if j == 0 else c_out, "out_channels": c_out, "kernel": 3,
                  "pool": pool and j == layers_per_agent - 1} for j in range(layers_per_agent)]
        standin = {"type": "conv", "in_channels": c_in, "out_channels": c_out, "kernel": 3, "pool": pool}
        if i == agents - 1:  # the head's stand-in flattens the block's input; its stack ends in the classifier
            standin = {"type": "head", "in": c_in * size * size, "classes": 10}
        c_in, size = c_out, size // 2 if pool else size
        if i == agents - 1:
            stack.append({"type": "head", "in": c_in * size * size, "classes": 10})
        stacks.append(stack)
        standins.append(standin)
    kwargs = {"batch_size": batch, "examples": train_examples, "noise": noise}
    env = {"id": "runs.bench.envs:ShapesImages", "kwargs": kwargs,
           "eval": {"split": "test", "examples": eval_examples}}
    note = None if agents == 1 else "I(x) maps the images to a stage's maps of the same H x W only (conv synthesizer)"
    return Workload("cnn", env, stacks, standins, {"name": "adam", "lr": lr}, unlock_note=note)


def system_recipe(w: Workload, mode: str, seed: int, seconds: float, eval_every: int, steps: int,
                  launcher: str = "local", device: str = "auto") -> dict[str, Any]:
    """The dnilab recipe of one system: the workload's agents in a chain with ``mode``'s edges, a wall-clock
    budget of ``seconds`` of training (``steps`` batches at most) and an evaluation every ``eval_every`` batches."""
    backward, forward = SYSTEMS[mode]
    edge: dict[str, Any] = {"backward": backward, "forward": forward, "synthesizer": {"hidden": [], "lr": w.sg_lr}}
    if forward == "synthetic":  # as runs/mnist-fcn4-unlock-cdni.toml: I(x), and the real h of a step when it comes
        edge["input_synthesizer"] = dict(w.input_synthesizer)
        edge["late_real"] = True
    names = [f"s{i + 1}" for i in range(w.agents - 1)] + ["head"]
    chain = ["env", *names]
    return {
        "run": {"name": f"speedup-{w.model}-n{w.agents}-{mode}-s{seed}", "steps": steps, "seconds": seconds,
                "eval_every": eval_every, "seed": seed, "metrics_every": max(1, min(50, eval_every)),
                "launcher": launcher, "device": device},
        "env": w.env,
        "agents": [{"name": n, "module": m} for n, m in zip(names, w.standins)],
        "edges": [{"from": a, "to": b} for a, b in zip(chain[:-1], chain[1:])],
        "defaults": {"agent": {"optimizer": dict(w.optimizer)}, "edge": edge},
    }


# -- measuring ----------------------------------------------------------------------------------------------------

Curve = list[tuple[float, int, float]]  # (seconds since training began, training batches, test accuracy %)


def time_to_target(curve: Curve, threshold: float) -> float | None:
    """The first time the curve reaches ``threshold`` (evaluations in time order); None if it never does."""
    for t, _, acc in sorted(curve):
        if acc >= threshold - 1e-9:
            return t
    return None


def run_curve(res: RunResult) -> Curve:
    """A dnilab run's evaluations on the clock of its training: the supervisor records every row with its own
    clock; the environment node's rows also carry the seconds since it started sending batches, so their least
    difference is when training began."""
    rows = res.metrics.get("env") or [r for name, rs in res.metrics.items() if name != "eval" for r in rs]
    starts = [r["time"] - r["wall_s"] for r in rows if "time" in r and "wall_s" in r]
    t0 = min(starts) if starts else 0.0
    return [(r["time"] - t0, int(r.get("at", r.get("step", 0))), 100.0 - r["test_error"])
            for r in res.metrics.get("eval", []) if "test_error" in r]


@contextmanager
def pinned(cores: Sequence[int], threads: int):
    """Run the block on ``cores`` with ``threads`` torch threads, then restore this process's affinity and threads."""
    old_threads = torch.get_num_threads()
    old_cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if old_cores is not None and cores:
        os.sched_setaffinity(0, cores)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        if old_cores is not None:
            os.sched_setaffinity(0, old_cores)


def agent_cores(agents: int) -> list[int]:
    """Every core the N agents are pinned to, together: the baseline's share."""
    return sorted({c for i in range(agents) for c in cores_per_agent(i, agents)})


def _batches(env: Any, seed: int):
    """The environment node's order of batches: reset(seed) first, then step; reset again where an epoch ends."""
    obs, info = env.reset(seed=seed)
    while True:
        yield torch.as_tensor(obs).float(), torch.as_tensor(info["target"]).long()
        obs, _, terminated, truncated, info = env.step(None)
        if terminated:
            obs, info = env.reset()
        elif truncated:
            yield torch.as_tensor(obs).float(), torch.as_tensor(info["target"]).long()
            obs, info = env.reset()


def _eval_batches(w: Workload, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The evaluation split, in the environment node's order (one pass)."""
    env = make(w.env["id"], **{**w.env["kwargs"], **w.env["eval"]})
    out, (obs, info) = [], env.reset(seed=seed)
    while True:
        out.append((torch.as_tensor(obs).float(), torch.as_tensor(info["target"]).long()))
        obs, _, terminated, truncated, info = env.step(None)
        if terminated:
            break
        if truncated:
            out.append((torch.as_tensor(obs).float(), torch.as_tensor(info["target"]).long()))
            break
    env.close()
    return out


def _accuracy(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], device: str) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in batches:
            y = y.to(device)
            correct += int((model(x.to(device)).argmax(1) == y).sum())
            total += len(y)
    model.train()
    return 100.0 * correct / max(total, 1)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def baseline_curve(w: Workload, seed: int, steps: int, eval_every: int, device: str = "cpu") -> Curve:
    """The plain PyTorch loop a user would write for the whole model, evaluated like the dnilab systems."""
    env = make(w.env["id"], **w.env["kwargs"])
    evals = _eval_batches(w, seed)
    torch.manual_seed(seed)
    model = build_stack(w.layers).to(device)
    optimizer = build_optimizer(dict(w.optimizer), model.parameters())
    batches = _batches(env, seed)
    curve: Curve = []
    _sync(device)
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        x, y = next(batches)
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % eval_every == 0 or step == steps:
            acc = _accuracy(model, evals, device)  # .item()s inside: the clock reads after the device is done
            curve.append((time.perf_counter() - t0, step, acc))
    env.close()
    return curve


def _first_batch(w: Workload, device: str) -> torch.Tensor:
    env = make(w.env["id"], **w.env["kwargs"])
    x, _ = next(_batches(env, 0))
    env.close()
    return x.to(device)


def _step_ms(layers: Sequence[dict[str, Any]], x: torch.Tensor, w: Workload, device: str,
             repeats: int = 5) -> tuple[float, torch.Tensor]:
    """Median ms of forward, backward and optimizer step of ``layers`` on ``x`` (after one warm-up), and their
    output (the next stage's input)."""
    torch.manual_seed(0)
    module = build_stack(layers).to(device)
    opt = build_optimizer(dict(w.optimizer), module.parameters())
    with torch.no_grad():
        out = module(x)
    grad = torch.ones_like(out) / math.prod(out.shape)
    times = []
    for _ in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        module(x).backward(grad)
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 1000 * sorted(times[1:])[len(times[1:]) // 2], out


def stage_ms(w: Workload, device: str = "cpu", threads: int = 1, repeats: int = 5) -> float:
    """Milliseconds of forward, backward and Adam step of the slowest agent's layers alone (its thread share):
    what each stage's compute costs against the per-step floor of ``bench floor``."""
    x, worst = _first_batch(w, device), 0.0
    with pinned([], threads):
        for stack in w.stacks:
            ms, x = _step_ms(stack, x, w, device, repeats)
            worst = max(worst, ms)
    return worst


def thread_scaling(w: Workload, cores: Sequence[int], device: str = "cpu", repeats: int = 5) -> tuple[float, float]:
    """ms of one training step of the whole model with 1 torch thread and with one per core, on ``cores``: the
    baseline's thread efficiency here and now. On a loaded machine the second can be several times the first
    (threads of one parallel op wait for each other), which would make the baseline look slow: a check on the
    conditions, recorded in the baseline's row."""
    x = _first_batch(w, device)
    with pinned(cores, 1):
        one, _ = _step_ms(w.layers, x, w, device, repeats)
    with pinned(cores, len(cores)):
        every, _ = _step_ms(w.layers, x, w, device, repeats)
    return one, every


# -- the bench ----------------------------------------------------------------------------------------------------


@dataclass
class Settings:
    """What one invocation measures; every system of one (model, N, seed) shares them."""

    steps: int = 600            # the baseline's training batches; its final accuracy is the threshold
    eval_every: int = 50        # batches between evaluations, for every system
    budget: float = 2.0         # the other systems train for this times the baseline's wall-clock
    device: str = "auto"
    launcher: str = "local"
    width: int = 512
    channels: int = 16
    layers_per_agent: int = 2
    batch: int | None = None    # examples per batch [default: 256 mlp, 32 cnn]
    data_limit: int | None = None  # fewer training examples (MNIST) / generated examples (cnn): smoke runs
    eval_limit: int | None = None  # fewer test examples


def workload(model: str, agents: int, s: Settings) -> Workload:
    if model == "mlp":
        return mlp_workload(agents, s.width, s.layers_per_agent, s.batch or 256, eval_limit=s.eval_limit or 2048,
                            train_limit=s.data_limit)
    if model == "cnn":
        return cnn_workload(agents, s.channels, s.layers_per_agent, s.batch or 32, eval_examples=s.eval_limit or 1024,
                            train_examples=s.data_limit or 8192)
    raise ValueError(f"model: expected one of {MODELS}, got {model!r}")


def _row(w: Workload, mode: str, seed: int, device: str, curve: Curve, threshold: float, base_t: float | None,
         wall: float, stage: float, note: str | None = None) -> Row:
    t = time_to_target(curve, threshold)
    return {"model": w.model, "agents": w.agents, "seed": seed, "mode": mode, "device": device,
            "threshold": threshold, "time_to_target_s": t,
            "ratio": t / base_t if t is not None and base_t else None,
            "final_accuracy": curve[-1][2] if curve else None,
            "best_accuracy": max((c[2] for c in curve), default=None),
            "steps": curve[-1][1] if curve else 0, "wall_s": wall, "stage_ms": stage, "note": note,
            "curve": [list(c) for c in curve]}


def bench_one(w: Workload, seed: int, modes: Sequence[str], s: Settings, out: Path) -> list[Row]:
    """The baseline, then every other system of ``modes`` for ``s.budget`` times its wall-clock; rows in that order."""
    device = pick_device(0, s.device)
    cores = agent_cores(w.agents)
    stage = stage_ms(w, device, max(1, len(cores) // w.agents))
    one, every = thread_scaling(w, cores, device)
    with pinned(cores, len(cores)):
        base = baseline_curve(w, seed, s.steps, s.eval_every, device)
    threshold = base[-1][2]
    base_t = time_to_target(base, threshold)
    wall = base[-1][0]
    rows = [_row(w, BASELINE, seed, device, base, threshold, base_t, wall, stage,
                 f"one process, {len(cores)} torch threads on cores {cores}")]
    rows[0].update(step_ms_1_thread=one, step_ms_all_threads=every, thread_speedup=one / every if every else None)
    for mode in modes:
        if mode == BASELINE:
            continue
        if mode == "unlock" and w.unlock_note:
            rows.append(_row(w, mode, seed, device, [], threshold, base_t, 0.0, stage, w.unlock_note))
            continue
        recipe = system_recipe(w, mode, seed, s.budget * wall, s.eval_every, 1000 * s.steps, s.launcher, s.device)
        stacks = {a["name"]: stack for a, stack in zip(recipe["agents"], w.stacks)}
        res = run_recipe(recipe, out / recipe["run"]["name"], stacks, pin=True)
        curve = run_curve(res)
        cpus = {name: stats.get("cpus") for name, stats in sorted(res.summary.get("agents", {}).items())
                if name != "env" and stats.get("cpus") is not None}
        rows.append(_row(w, mode, seed, device, curve, threshold, base_t, curve[-1][0] if curve else 0.0, stage,
                         f"cores per agent: {cpus}" if cpus else None))
    return rows


def bench_speedup(models: Sequence[str] = MODELS, agents: Sequence[int] = (2,), seeds: Sequence[int] = (0,),
                  modes: Sequence[str] = MODES, settings: Settings | None = None, out: Path | None = None,
                  figures: Path | None = None) -> list[Row]:
    """Rows for every (model, N, seed, mode); with ``figures``, one PNG of accuracy against wall-clock per
    (model, N)."""
    s = settings or Settings()
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"modes: {unknown} unknown (expected some of {list(MODES)})")
    if [m for m in models if m not in MODELS]:
        raise ValueError(f"models: {list(models)} (expected some of {list(MODELS)})")
    loads = {(model, n): workload(model, n, s) for model in models for n in agents}
    for w in loads.values():  # every recipe is checked (a RecipeError names the key) before anything runs
        for mode in modes:
            if mode in SYSTEMS and not (mode == "unlock" and w.unlock_note):
                plan_recipe(system_recipe(w, mode, seeds[0], 1.0, s.eval_every, s.steps, s.launcher, s.device))
    out = Path(out or tempfile.mkdtemp(prefix="dnilab-bench-speedup-"))
    rows: list[Row] = []
    for (model, n), w in loads.items():
        group = [r for seed in seeds for r in bench_one(w, seed, modes, s, out)]
        rows += group
        if figures is not None:
            plot_curves(group, Path(figures) / f"speedup-{model}-n{n}.png")
    return rows


def plot_curves(rows: Sequence[Row], path: Path) -> Path:
    """Test accuracy against wall-clock for every system (one line per seed), the threshold of each seed dashed."""
    import matplotlib  # here, not at the top: every spawned agent process imports this package

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    colors = dict(zip(MODES, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    labelled: set[str] = set()
    for row in rows:
        curve = row.get("curve") or []
        if not curve:
            continue
        label = None if row["mode"] in labelled else row["mode"]
        labelled.add(row["mode"])
        ax.plot([c[0] for c in curve], [c[2] for c in curve], color=colors.get(row["mode"]), label=label,
                marker="o" if len(curve) < 25 else None, markersize=3)
        if row["time_to_target_s"] is not None:
            ax.plot([row["time_to_target_s"]], [row["threshold"]], "x", color=colors.get(row["mode"]))
    for threshold in sorted({r["threshold"] for r in rows}):
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=0.8)
    first = rows[0]
    ax.set_title(f"{first['model']}, {first['agents']} agents on {first['device']}: test accuracy against wall-clock")
    ax.set_xlabel("seconds of training (evaluations included)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
