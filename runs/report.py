"""``dnilab report``: run folders -> a markdown table beside the paper's numbers, and learning-curve plots.

A run folder holds ``summary.json``, the resolved ``recipe.toml`` and ``metrics/*.jsonl`` (see
``records.py``). ``collect_runs`` finds run folders and derives what identifies a cell of the paper's
tables (task, depth or truncation T, mode); ``PAPER`` holds the paper's numbers keyed the same way
(docs/PAPER.md says where each comes from; most are not yet confirmed from the paper text).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any, NamedTuple

from .records import read_evals, read_jsonl, read_summary

# -------------------------------------------------------------------------------------- paper numbers


class PaperNumber(NamedTuple):
    """One number from the paper: its value, what it measures, whether it was read from the paper text."""

    value: float
    metric: str  # "test_error" (%), "max_length", "test_bpc"
    confirmed: bool
    source: str


_FF_SOURCE = "v1 Table 1 (feed-forward), recalled, not read: docs/PAPER.md"
_RNN_SOURCE = "v1 Table 2 (recurrent), recalled with low confidence, not read: docs/PAPER.md"
_FF_MODES = ("bprop", "no bprop", "dni", "cdni")
_RNN_MODES = ("bptt", "dni", "dni + aux")

# (dataset, net) -> depth -> values in the order of _FF_MODES (test error %).
_FF_TABLE: dict[tuple[str, str], dict[int, tuple[float, ...]]] = {
    ("mnist", "fcn"): {3: (2.0, 9.3, 1.9, 2.2), 4: (1.8, 12.6, 2.2, 1.9), 5: (1.8, 16.2, 3.4, 1.7),
                       6: (1.8, 21.4, 4.3, 1.6)},
    ("mnist", "cnn"): {3: (0.8, 0.9, 0.9, 1.0), 4: (0.6, 2.8, 0.7, 0.8)},
    ("cifar10", "fcn"): {3: (43.5, 54.9, 42.5, 48.5), 4: (43.0, 57.2, 45.0, 45.1),
                         5: (41.7, 59.6, 46.9, 43.5), 6: (42.0, 61.9, 49.7, 46.8)},
    ("cifar10", "cnn"): {3: (17.9, 28.7, 19.5, 19.0), 4: (15.7, 38.1, 19.5, 19.4)},
}
# task -> mode -> values at T = 2, 3, 4, 5, 8 (None: not recalled).
_RNN_T = (2, 3, 4, 5, 8)
_RNN_TABLE: dict[str, tuple[str, dict[str, tuple[float | None, ...]]]] = {
    "copy": ("max_length", {"bptt": (7, 8, 10, 8, None), "dni": (16, 14, 18, 18, None),
                            "dni + aux": (16, 17, 19, 19, None)}),
    "repeatcopy": ("max_length", {"bptt": (7, 5, 19, 23, None), "dni": (39, 33, 39, 59, None),
                                  "dni + aux": (39, 59, 67, 87, None)}),
    "ptb": ("test_bpc", {"bptt": (1.39, 1.38, 1.37, 1.37, 1.35), "dni": (1.37, 1.36, 1.35, 1.35, 1.34),
                         "dni + aux": (1.37, 1.36, 1.35, 1.35, 1.34)}),
}


def _build_paper() -> dict[tuple, PaperNumber]:
    out: dict[tuple, PaperNumber] = {}
    for (data, net), rows in _FF_TABLE.items():
        for depth, values in rows.items():
            for mode, v in zip(_FF_MODES, values):
                out[(data, net, depth, mode)] = PaperNumber(v, "test_error", False, _FF_SOURCE)
    for task, (metric, rows) in _RNN_TABLE.items():
        for mode, values in rows.items():
            for t, v in zip(_RNN_T, values):
                if v is not None:
                    out[(task, t, mode)] = PaperNumber(float(v), metric, False, _RNN_SOURCE)
    return out


PAPER: dict[tuple, PaperNumber] = _build_paper()
"""Keys: ``(dataset, net, depth, mode)`` for feed-forward (e.g. ``("mnist", "fcn", 4, "cdni")``, test error
%); ``(task, T, mode)`` for recurrent (``"copy"``/``"repeatcopy"`` -> max length, ``"ptb"`` -> test BPC;
modes ``"bptt"``, ``"dni"``, ``"dni + aux"``). ``confirmed`` is False for every number not read from the
paper text (all of them at present)."""


def paper_key(run: dict[str, Any]) -> tuple | None:
    """The ``PAPER`` key of a collected run's cell, or None if the paper has no such cell."""
    if run["kind"] == "feedforward":
        return (run["dataset"], run["net"], run["depth"], run["mode"])
    if run["kind"] == "recurrent":
        return (run["task"], run["depth"], run["mode"])
    return None


def paper_number(run: dict[str, Any]) -> PaperNumber | None:
    """The paper's number for the same cell as ``run`` (None if there is none)."""
    key = paper_key(run)
    return PAPER.get(key) if key is not None else None


# -------------------------------------------------------------------------------------- collecting runs

_BACKWARD_NAMES = {"backprop": "bprop", "none": "no bprop", "dni": "dni", "cdni": "cdni"}


def _short_env(env_id: str) -> str:
    """``"dnilab/MNIST-v0"`` -> ``"mnist"``; ``"pkg.mod:CIFAR10"`` -> ``"cifar10"``."""
    name = env_id.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    name = re.sub(r"-v\d+$", "", name)
    return re.sub(r"[^a-z0-9]", "", name.lower()) or env_id


def _ff_mode(recipe: dict[str, Any]) -> str:
    """Backward (and forward) mode of a feed-forward recipe's agent-to-agent edges."""
    default = recipe.get("defaults", {}).get("edge", {})
    edges = [e for e in recipe.get("edges", []) if isinstance(e, dict) and e.get("from", "env") != "env"]
    backward = {e.get("backward", default.get("backward", "backprop")) for e in edges} or {
        default.get("backward", "backprop")}
    forward = {e.get("forward", default.get("forward", "real")) for e in edges} or {
        default.get("forward", "real")}
    mode = _mode_names(backward)
    if "synthetic" in forward:
        mode += " + synthetic input"
        if recipe.get("run", {}).get("pace") == "all":
            mode += ", equal data"  # the env waits for every agent: not free-running
    return mode


def _rnn_mode(agent: dict[str, Any]) -> str:
    sg = agent.get("sg", "dni")
    if sg == "none":
        return "bptt"
    return f"{sg} + aux" if agent.get("aux") else str(sg)


def describe(recipe: dict[str, Any]) -> dict[str, Any]:
    """Derived fields of a resolved recipe: kind, task, dataset, net, depth (or T), mode."""
    run = recipe.get("run", {})
    kind = run.get("kind", "feedforward")
    env = recipe.get("env", {})
    dataset = _short_env(str(env.get("id", "")))
    out: dict[str, Any] = {"kind": kind, "dataset": dataset, "net": None, "depth": None, "mode": "—"}
    if kind == "feedforward":
        model = recipe.get("model", {})
        out["net"] = model.get("kind", "fcn") if model else "custom"
        out["depth"] = model.get("depth") if model else len(recipe.get("agents", [])) or None
        if out["depth"] is None and out["net"] == "cnn" and "channels" in model:  # conv agents + the classifier
            out["depth"] = len(model["channels"]) + 1
        out["task"] = f"{dataset} {out['net']}"
        out["mode"] = _ff_mode(recipe)
    elif kind == "recurrent":
        agent = recipe.get("agent", {})
        task = dataset
        if dataset == "charlm":
            corpus = str(env.get("kwargs", {}).get("corpus", "shakespeare")).lower()
            task = "ptb" if corpus in ("ptb", "penntreebank", "penn_treebank") else f"charlm-{corpus}"
        out.update(task=task, depth=agent.get("window", 3), mode=_rnn_mode(agent))
    else:
        out["task"] = f"{kind} {dataset}"
        out["depth"] = len(recipe.get("levels", {})) or None
        out["mode"] = _multiscale_mode(recipe)
    return out


def _multiscale_mode(recipe: dict[str, Any]) -> str:
    """Backward modes of a multiscale chain's edges: [defaults.edge], overridden per level above the first."""
    default = recipe.get("defaults", {}).get("edge", {}).get("backward", "backprop")
    levels = [t for t in recipe.get("levels", {}).values() if isinstance(t, dict)][1:]
    return _mode_names({t.get("backward", default) for t in levels} or {default})


def _mode_names(backward: set[str]) -> str:
    """The report's name for a set of edge backward modes, e.g. {"backprop", "dni"} -> "bprop/dni"."""
    return "/".join(sorted(_BACKWARD_NAMES.get(b, b) for b in backward))


def _run_dirs(path: Path) -> list[Path]:
    if (path / "summary.json").is_file():
        return [path]
    return sorted(p.parent for p in path.rglob("summary.json"))


def _read_recipe(run_dir: Path) -> dict[str, Any]:
    try:
        return tomllib.loads((run_dir / "recipe.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def collect_runs(paths: list[Path]) -> list[dict[str, Any]]:
    """One dict per run folder found under ``paths`` (each a run folder or a folder of run folders).

    Keys: ``dir``, ``name``, ``summary``, ``recipe``, ``kind``, ``task``, ``dataset``, ``net``, ``depth``
    (layers, or the truncation window T for recurrent runs), ``mode``, ``steps``, ``wall_s``, ``status``,
    ``eval`` (the final composed-system evaluation) and ``paper`` (a ``PaperNumber`` or None).
    """
    seen: set[Path] = set()
    runs: list[dict[str, Any]] = []
    for root in paths:
        for run_dir in _run_dirs(Path(root)):
            key = run_dir.resolve()
            summary = read_summary(run_dir)
            if key in seen or summary is None:
                continue
            seen.add(key)
            recipe = _read_recipe(run_dir)
            run: dict[str, Any] = {
                "dir": run_dir,
                "name": summary.get("name") or recipe.get("run", {}).get("name") or run_dir.name,
                "summary": summary, "recipe": recipe, **describe(recipe),
                "steps": summary.get("steps", recipe.get("run", {}).get("steps")),
                "wall_s": summary.get("wall_s"), "status": summary.get("status", "?"),
                "eval": dict(summary.get("eval") or {}),
            }
            run["paper"] = paper_number(run)
            runs.append(run)
    names = [r["name"] for r in runs]
    for run in runs:  # sweep cells may share a recipe name: tell them apart by folder
        if names.count(run["name"]) > 1:
            run["name"] = run["dir"].name
    return runs


# -------------------------------------------------------------------------------------- tables

# (eval key, label, unit, format) in order of preference for "the" metric of a run.
METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("test_error", "test error", " %", "{:.2f}"),
    ("max_length", "max length", "", "{:.0f}"),
    ("test_bpc", "test BPC", "", "{:.3f}"),
    ("valid_bpc", "valid BPC", "", "{:.3f}"),
    ("test_accuracy", "test accuracy", "", "{:.4g}"),
)
_MODE_ORDER = {m: i for i, m in enumerate(_FF_MODES + _RNN_MODES)}


def main_metric(run: dict[str, Any]) -> tuple[str, float] | None:
    """(eval key, value) of the first metric in ``METRICS`` that the run's final eval has."""
    for key, *_ in METRICS:
        v = run["eval"].get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return key, float(v)
    return None


def _fmt(key: str, value: float) -> str:
    fmt = next(f for k, _, _, f in METRICS if k == key) if key in {m[0] for m in METRICS} else "{:.4g}"
    return fmt.format(value)


def _ours(run: dict[str, Any]) -> str:
    parts = []
    for key, label, unit, fmt in METRICS:
        v = run["eval"].get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            parts.append(f"{label} {fmt.format(v)}{unit}")
    if "test_bpc" in run["eval"] and "valid_bpc" in run["eval"]:  # show both BPCs, as valid / test
        parts = [p for p in parts if "BPC" not in p]
        parts.insert(0, f"valid / test BPC {run['eval']['valid_bpc']:.3f} / {run['eval']['test_bpc']:.3f}")
    return "; ".join(parts) or "—"


def _paper_cell(paper: PaperNumber | None) -> str:
    if paper is None:
        return "—"
    return f"{paper.value:g}" + ("" if paper.confirmed else " (u)")  # as printed in the paper


def _wall(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _sort_key(run: dict[str, Any]) -> tuple:
    depth = run["depth"] if isinstance(run["depth"], int) else -1
    return (run["task"], depth, _MODE_ORDER.get(run["mode"], len(_MODE_ORDER)), run["mode"], run["name"])


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def pivot_table(runs: list[dict[str, Any]], task: str) -> str:
    """Rows = mode, columns = depth (or T), cells = "ours (paper)" for one task's runs."""
    group = [r for r in runs if r["task"] == task]
    depths = sorted({r["depth"] for r in group}, key=lambda d: (d is None, d if isinstance(d, int) else 0))
    modes = sorted({r["mode"] for r in group}, key=lambda m: (_MODE_ORDER.get(m, len(_MODE_ORDER)), m))
    cells: dict[tuple[Any, str], list[dict[str, Any]]] = defaultdict(list)
    for r in group:
        cells[(r["depth"], r["mode"])].append(r)
    metric = next((m[0] for r in group if (m := main_metric(r))), None)
    label = next((lab for k, lab, _, _ in METRICS if k == metric), "metric")
    col = "T" if group and group[0]["kind"] == "recurrent" else "depth"
    lines = [f"{task}: {label}, ours (paper)", "", _row(["mode"] + [f"{col} {d}" for d in depths]),
             _row(["---"] * (len(depths) + 1))]
    for mode in modes:
        row = [mode]
        for d in depths:
            found = cells.get((d, mode), [])
            values = [m[1] for r in found if (m := main_metric(r)) and m[0] == metric]
            ours = " / ".join(_fmt(metric, v) for v in values) if values and metric else "—"
            paper = paper_number(dict(group[0], depth=d, mode=mode))  # also for cells we did not run
            row.append(f"{ours} ({_paper_cell(paper)})")
        lines.append(_row(row))
    return "\n".join(lines)


def markdown_table(runs: list[dict[str, Any]]) -> str:
    """One row per run (sorted by task, depth, mode) beside the paper's number; then pivot tables."""
    runs = sorted(runs, key=_sort_key)
    lines = [_row(["run", "task", "depth/T", "mode", "steps", "wall-clock", "status", "ours", "paper"]),
             _row(["---"] * 9)]
    for r in runs:
        depth = str(r["depth"]) if r["depth"] is not None else "—"
        steps = str(r["steps"]) if r["steps"] is not None else "—"
        lines.append(_row([r["name"], r["task"], depth, r["mode"], steps, _wall(r["wall_s"]), r["status"],
                           _ours(r), _paper_cell(r["paper"])]))
    out = "\n".join(lines)
    by_task: dict[str, set[tuple[Any, str]]] = defaultdict(set)
    for r in runs:
        by_task[r["task"]].add((r["depth"], r["mode"]))
    pivots = [pivot_table(runs, task) for task, cells in by_task.items() if len(cells) > 1]
    if pivots:
        out += "\n\n" + "\n\n".join(pivots)
    if any(r["paper"] is not None and not r["paper"].confirmed for r in runs):
        out += ("\n\n(u) = the paper's number is unconfirmed (recalled, not read from the paper text; "
                "docs/PAPER.md).")
    return out


# -------------------------------------------------------------------------------------- plot

def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_CURVE_METRICS = ("test_error", "test_accuracy", "valid_bpc", "test_bpc", "max_length")


def eval_curve(run: dict[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """(metric, rows) of the run's evaluation curve: its evaluations (``read_evals``) first, then other streams."""
    metrics = Path(run["dir"]) / "metrics"
    streams = [read_evals(run["dir"])] + [read_jsonl(p) for p in sorted(metrics.glob("*.jsonl"))
                                           if p.name != "eval.jsonl"]
    for rows in streams:
        for key in _CURVE_METRICS:
            picked = [r for r in rows if _is_number(r.get(key))]
            if picked:
                return key, picked
    return None


def plot_error_vs_time(runs: list[dict[str, Any]], path: Path) -> Path:
    """One PNG: each run's composed-system eval metric against wall-clock seconds and against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax_t, ax_s) = plt.subplots(1, 2, figsize=(11, 4))
    used: list[str] = []
    for run in sorted(runs, key=_sort_key):
        curve = eval_curve(run)
        if curve is None:
            continue
        key, rows = curve
        if key not in used:
            used.append(key)
        label = f"{run['name']} ({run['mode']})" + (f": {key}" if key != "test_error" else "")
        marker = "o" if len(rows) < 20 else None
        pts = [(r["time"], r[key]) for r in rows if isinstance(r.get("time"), (int, float))]
        if pts:
            ax_t.plot(*zip(*pts), label=label, marker=marker)
        step_key = "at" if any("at" in r for r in rows) else "step"
        pts = [(r[step_key], r[key]) for r in rows if isinstance(r.get(step_key), (int, float))]
        if pts:
            ax_s.plot(*zip(*pts), label=label, marker=marker)
    ylabel = ", ".join("test error (%)" if k == "test_error" else k for k in used) or "no evaluations"
    for ax, xlabel in ((ax_t, "wall-clock (s)"), (ax_s, "training step")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    ax_t.set_title("composed system vs time")
    ax_s.set_title("composed system vs step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
