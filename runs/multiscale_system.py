"""Multi-timescale recipes (``run.kind = "multiscale"``): a chain of ticking LSTM agents on a digit stream.

A recipe names the levels from fast to slow as ``[levels.<name>]`` tables (a table, not an array, so
``--set levels.slow.hidden=512`` works in sweeps), and the mode of the edges between them in
``[defaults.edge]`` (``backward`` = backprop | dni | cdni | none, ``synthesizer`` = M's settings) or per
level (the edge *into* that level):

    [levels.fast]                 [levels.slow]
    period = 1                    # period omitted: the env's k (the head ticks at the targets)
    encoder = 64                  hidden = "auto"   # per-tick compute = period ratio x the fast level's
    hidden = 64                   window = 1        # the head's TBPTT window, in its own ticks
    out = 32

Level keys: ``agents.LevelConfig`` (``window`` on the top level only, ``out`` below it, ``encoder`` on the
first, ``backward`` and ``synthesizer`` (``agents.TickingSynthesizerConfig``) above it).
``plot_multiscale`` draws accuracy against training seconds and against training samples for several run
folders on one figure.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agents import (
    ENV,
    AgentSpec,
    EdgeSpec,
    Graph,
    NodeSpec,
    TickSchedule,
    build_optimizer,
    level_macs,
    pooled_dim,
    solve_hidden,
    store_capacity,
    validate_topology,
)
from environments import make

from .devices import resolve_device
from .recipe import RecipeError
from .records import read_evals, read_jsonl
from .report import describe

__all__ = ["MultiscalePlan", "check_multiscale", "compare", "multiscale_specs", "plot_multiscale", "quarter_means",
           "time_to_reach"]

FACTORY_AGENT = "agents:TickingAgent"
FACTORY_ENV = "agents:EnvNode"
DEFAULT_OUT = 32


@dataclass
class MultiscalePlan:
    """What ``check_multiscale`` resolved: the chain, its schedule, and per-agent build arguments."""

    graph: Graph
    schedule: TickSchedule
    classes: int
    levels: list[str]
    groups: dict[str, int]      # backprop senders: env steps of windows they may hold
    credits: dict[str, int]     # acts a level may have in flight to the next level
    macs: dict[str, int]        # per-sample multiply-adds per tick, for the record


def _env_facts(env_id: str, kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        env = make(env_id, **kwargs)
    except Exception as err:  # noqa: BLE001 - any failure here is a recipe problem
        raise RecipeError(f"{where}: cannot make {env_id!r} with kwargs {kwargs}: "
                          f"{type(err).__name__}: {err}") from None
    raw = env.unwrapped
    facts = {key: getattr(raw, key, None) for key in ("k", "episode_length", "n_classes")}
    facts["shape"] = tuple(env.observation_space.shape[1:])
    env.close()
    if None in facts.values():
        raise RecipeError(f"env.id: {env_id!r} is not a digit stream (needs k, episode_length, n_classes)")
    return facts


def check_multiscale(recipe: dict[str, Any]) -> MultiscalePlan:
    """Check what a level may be at its place in the chain (``runs.config.MultiscaleRecipe`` checked each table
    alone) against the environment, naming the key, before anything starts; resolve the chain."""
    env_cfg = recipe["env"]
    edge_defaults = recipe["defaults"]["edge"]
    levels = recipe["levels"]
    kwargs = dict(env_cfg["kwargs"])
    facts = _env_facts(env_cfg["id"], kwargs, "env.kwargs")
    eval_kwargs = dict(env_cfg["eval"])
    if "k" in eval_kwargs:
        raise RecipeError("env.eval.k: the evaluation stream must use the training k")
    eval_facts = _env_facts(env_cfg["id"], {**kwargs, **eval_kwargs}, "env.eval")
    names = list(levels)
    tables: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        where = f"levels.{name}"
        table = levels[name]
        if name == ENV:
            raise RecipeError(f"{where}: {ENV!r} is reserved for the environment")
        top = i == len(names) - 1
        if i == 0:
            for key in ("backward", "synthesizer"):
                if key in table:
                    raise RecipeError(f"{where}.{key}: the first level reads the environment (no edge mode)")
            if table.get("hidden") == "auto":
                raise RecipeError(f"{where}.hidden: \"auto\" sizes a level against the one below; give an int")
        if not top and "window" in table:
            raise RecipeError(f"{where}.window: only the top level has one (a lower level's window is one "
                              "period of the next level)")
        if top and "out" in table:
            raise RecipeError(f"{where}.out: the top level is a head; its outputs are the env's classes")
        if i > 0 and "encoder" in table:
            raise RecipeError(f"{where}.encoder: only the first level encodes the environment's input")
        merged = {**edge_defaults, **table} if i > 0 else dict(table)
        merged.setdefault("period", facts["k"] if top else None)
        if merged["period"] is None:
            raise RecipeError(f"{where}.period: required below the top level")
        if top and merged["period"] != facts["k"]:
            raise RecipeError(f"{where}.period: the top level must tick at the env's targets (k = {facts['k']}), "
                              f"got {merged['period']}")
        try:  # built once on a dummy tensor: a bad name or argument fails here, not in a process
            build_optimizer(merged["optimizer"], [torch.zeros(1, requires_grad=True)])
        except ValueError as err:
            raise RecipeError(f"{where}.{err}") from None
        if merged.get("backward") == "cdni" and not top:
            raise RecipeError(f"{where}.backward: 'cdni' only on the edge into the top level (the env's "
                              "labels exist only at its ticks)")
        tables.append(merged)
    periods = tuple(t["period"] for t in tables)
    top_window = tables[-1].get("window", 1)
    try:
        schedule = TickSchedule(periods, facts["episode_length"], top_window)
    except ValueError as err:
        raise RecipeError(f"levels: {err}") from None
    if eval_facts["episode_length"] % periods[-1]:
        raise RecipeError(f"env.eval.episode_length: must be a multiple of the top period {periods[-1]}, "
                          f"got {eval_facts['episode_length']}")
    return _build_plan(recipe, names, tables, schedule, facts)


def _build_plan(recipe: dict[str, Any], names: list[str], tables: list[dict[str, Any]], schedule: TickSchedule,
                facts: dict[str, Any]) -> MultiscalePlan:
    run = recipe["run"]
    classes = int(facts["n_classes"])
    in_dim = int(math.prod(facts["shape"]))
    agents: list[AgentSpec] = []
    edges: list[EdgeSpec] = []
    macs: dict[str, int] = {}
    prev_out, prev_macs = in_dim, 0
    for i, (name, t) in enumerate(zip(names, tables)):
        top = i == len(names) - 1
        out = classes if top else t.get("out", DEFAULT_OUT)
        phases = 1 if top else schedule.window(i)
        encoder = t.get("encoder", 0)
        hidden = t["hidden"]
        if hidden == "auto":
            ratio = schedule.periods[i] // schedule.periods[i - 1]
            hidden = solve_hidden(ratio * prev_macs, prev_out, out, phases)
        macs[name] = level_macs(prev_out, hidden, out, encoder, phases)
        module = {"type": "ticking_lstm", "period": schedule.periods[i], "hidden": hidden, "encoder": encoder,
                  "window": schedule.window(i), "flush": t.get("flush", not top), "clip": t["clip"]}
        spec = AgentSpec(name=name, module=module, optimizer=dict(t["optimizer"]), slowdown=t["slowdown"],
                         stage_ms=t["stage_ms"],
                         device=resolve_device(i, t.get("device", run["device"]),
                                               f"levels.{name}.device" if "device" in t else "run.device",
                                               run["launcher"]),
                         in_shape=facts["shape"] if i == 0 else (prev_out,), out_shape=(out,), head=top)
        agents.append(spec)
        sender = ENV if i == 0 else names[i - 1]
        edges.append(EdgeSpec(sender, name, backward="backprop" if i == 0 else t["backward"],
                              synthesizer=dict(t.get("synthesizer", {}))))  # the first edge's: the env's
        if i > 0 and t["backward"] in ("dni", "cdni"):
            try:  # M reads the sender's raw inputs pooled: they must be square images the factor divides
                pooled_dim(math.prod(agents[i - 1].in_shape), t["synthesizer"]["pool"])
            except ValueError as err:
                raise RecipeError(f"levels.{name}.synthesizer.pool: {err}") from None
        prev_out, prev_macs = out, macs[name]
    graph = Graph(agents, edges, facts["shape"], classes)
    try:
        validate_topology(graph)
    except ValueError as err:
        raise RecipeError(str(err)) from None
    modes = [e.backward for e in edges[1:]] + ["head"]   # mode of the edge out of level i
    groups: dict[str, int] = {}
    credits: dict[str, int] = {}
    for i, name in enumerate(names[:-1]):
        groups[name] = schedule.group(i, modes) if modes[i] == "backprop" else 0
        held = groups[name] // schedule.periods[i + 1] if groups[name] else 0
        credits[name] = max(run["window"], held + 1)
    try:
        run["capacity"] = store_capacity(run["capacity"], graph, max(credits.values(), default=run["window"]))
    except ValueError as err:
        raise RecipeError(str(err)) from None
    return MultiscalePlan(graph, schedule, classes, names, groups, credits, macs)


def multiscale_specs(recipe: dict[str, Any], plan: MultiscalePlan, run_dir: str) -> list[NodeSpec]:
    """The environment node plus one ``TickingAgent`` per level, each in its own process (1 torch thread)."""
    run, env_cfg = recipe["run"], recipe["env"]
    specs = [NodeSpec(ENV, FACTORY_ENV, dict(
        graph=plan.graph, env_id=env_cfg["id"], env_kwargs=env_cfg.get("kwargs", {}),
        eval_kwargs=env_cfg.get("eval", {"split": "test"}), steps=run["steps"], seconds=float(run["seconds"]),
        seed=run["seed"], eval_every=run["eval_every"], window=run["window"],
        metrics_every=run["metrics_every"]), required=True)]
    for i, name in enumerate(plan.levels):
        agent = plan.graph.agent(name)
        specs.append(NodeSpec(name, FACTORY_AGENT, dict(
            spec=agent, graph=plan.graph, level=i, schedule=plan.schedule, classes=plan.classes,
            group=plan.groups.get(name, 0), seed=run["seed"] * 1000 + i, run_dir=run_dir,
            window=plan.credits.get(name, run["window"]), capacity=run["capacity"],
            metrics_every=run["metrics_every"], steps=run["steps"]),
            device=agent.device, threads=1, required=agent.head,
            num_gpus=1.0 if agent.device.startswith("cuda") else 0.0))
    return specs


# -------------------------------------------------------------------------------------- figure

def accuracy_curve(run_dir: Path) -> list[dict[str, Any]]:
    """Eval rows of a run (test_accuracy %, train_s, at = env steps trained, samples)."""
    recipe = tomllib.loads((run_dir / "recipe.toml").read_text())
    batch = recipe.get("env", {}).get("kwargs", {}).get("batch_size", 64)
    rows = [r for r in read_evals(run_dir) if "test_accuracy" in r]
    for r in rows:
        r["samples"] = r.get("at", 0) * batch
    return rows


MODE_COLOURS = {"bprop": "tab:blue", "dni": "tab:red", "cdni": "tab:green"}  # by report.describe's mode
_LINES = ["-", "--", ":", "-.", (0, (1, 1)), (0, (6, 2))]
_MARKERS = ["o", "s", "^", "D", "x", "v", "P", "*", "h", "<", ">", "p"]
VARIANT_STYLES = [(_LINES[i % len(_LINES)], _MARKERS[i]) for i in range(len(_MARKERS))]  # 12 distinct


def plot_multiscale(run_dirs: list[Path], path: Path, title: str = "", ymin: float | None = None) -> Path:
    """One PNG: the slow agent's test accuracy vs training seconds (left) and vs training samples (right);
    ``ymin`` cuts the early climb off the axes so that late differences of a point or less can be seen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {Path(d): accuracy_curve(Path(d)) for d in run_dirs}
    curves = {d: rows for d, rows in curves.items() if rows}
    legend_rows = math.ceil(len(curves) / 2)  # one legend for both panels, below them, so that it hides no curve
    legend_h = 0.17 * legend_rows  # inches
    height = 4 + legend_h
    fig, (ax_t, ax_s) = plt.subplots(1, 2, figsize=(11, height))
    variants: list[str] = []
    for run_dir, rows in curves.items():
        label = run_dir.name
        # one colour per edge mode, one line style per variant (k, simulated devices, levels), so runs are told apart
        mode = describe(tomllib.loads((run_dir / "recipe.toml").read_text()))["mode"]
        variant = label.replace({"bprop": "backprop"}.get(mode, mode), "", 1)
        if variant not in variants:
            variants.append(variant)
        ls, marker = VARIANT_STYLES[variants.index(variant) % len(VARIANT_STYLES)]
        style = {"color": MODE_COLOURS.get(mode, "grey"), "ls": ls, "marker": marker, "ms": 4, "label": label}
        ax_t.plot([r["train_s"] for r in rows], [r["test_accuracy"] for r in rows], **style)
        ax_s.plot([r["samples"] for r in rows], [r["test_accuracy"] for r in rows], **style)
    for ax, xlabel in ((ax_t, "training wall-clock (s)"), (ax_s, "training samples (env steps x batch)")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("slow agent test accuracy (%)")
        ax.grid(alpha=0.3)
        if ymin is not None:
            ax.set_ylim(bottom=ymin)
    if curves:
        fig.legend(*ax_s.get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=7, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, legend_h / height + 0.02, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def time_to_reach(rows: list[dict[str, Any]], accuracy: float) -> float | None:
    """Training seconds at the first evaluation with test accuracy >= ``accuracy`` (None if never)."""
    for r in rows:
        if r["test_accuracy"] >= accuracy:
            return float(r["train_s"])
    return None


def compare(baseline: Path, others: list[Path]) -> list[dict[str, Any]]:
    """Final accuracy, training seconds, and time to reach the baseline's final accuracy, per run."""
    base = accuracy_curve(Path(baseline))
    final = base[-1]["test_accuracy"] if base else float("nan")
    total = base[-1]["train_s"] if base else float("nan")
    out = []
    for run_dir in [Path(baseline), *map(Path, others)]:
        rows = accuracy_curve(run_dir)
        if not rows:
            continue
        reach = time_to_reach(rows, final)
        out.append({"run": run_dir.name, "final_accuracy": rows[-1]["test_accuracy"],
                    "train_s": rows[-1]["train_s"], "delta_vs_baseline": rows[-1]["test_accuracy"] - final,
                    "reach_baseline_final_s": reach,
                    "reach_ratio": reach / total if reach is not None and total else None})
    return out


def quarter_means(run_dir: Path, agent: str, keys: list[str], parts: int = 4) -> dict[str, list[float | None]]:
    """Mean of each metric in ``keys`` over each quarter (``parts``) of the run's steps, from the agent's metric
    stream (``metrics/<agent>.jsonl``, kept with the full run only): how M's agreement with its target moves."""
    rows = read_jsonl(Path(run_dir) / "metrics" / f"{agent}.jsonl")
    last = max((r.get("step", 0) for r in rows), default=0) + 1
    out: dict[str, list[float | None]] = {}
    for key in keys:
        bins: list[list[float]] = [[] for _ in range(parts)]
        for r in rows:
            if key in r and r.get("step") is not None:
                bins[min(parts - 1, r["step"] * parts // last)].append(float(r[key]))
        out[key] = [sum(b) / len(b) if b else None for b in bins]
    return out
