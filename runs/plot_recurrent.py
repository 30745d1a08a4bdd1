"""Comparison figures of recurrent runs (BPTT vs DNI), one PNG per task, for docs/RESULTS-recurrent.md.

Usage: ``dnilab plot-recurrent results/recurrent docs/img``

Reads every run folder under the results root (``recipe.toml`` + ``metrics/recurrent.jsonl``) and writes:

- ``recurrent-copy.png`` / ``recurrent-repeatcopy.png``: curriculum level (solved ``max_length``, and the
  length currently being trained) vs training windows for each T, BPTT vs DNI (vs DNI + Aux if run); and
  for the DNI runs the synthetic gradient's quality at the window boundary, cosine similarity and norm
  ratio of M(s) to its bootstrapped target, vs windows;
- ``recurrent-charlm.png``: validation BPC vs training characters (equal data across T), training BPC, the
  core's gradient norm before clipping, and the DNI runs' synthetic-gradient cosine and norm ratio, for the
  runs of one seed (repeats of a setting with other seeds go to the next figure);
- ``recurrent-charlm-paired.png``: settings run with several seeds, paired by seed with the BPTT runs of the same
  budget: DNI − BPTT in best validation and test BPC per seed (mean ± standard error), and the validation curves
  of the settings run at the longest budget.
"""

from __future__ import annotations

import json
import math
import statistics
import tomllib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TASKS = {"dnilab/Copy-v0": "copy", "dnilab/RepeatCopy-v0": "repeatcopy", "dnilab/CharLM-v0": "charlm"}


def load_runs(root: Path) -> list[dict]:
    """One dict per run folder: task, T, mode, batch size and the metric rows."""
    runs = []
    for recipe in sorted(root.glob("*/recipe.toml")):
        rows_path = recipe.parent / "metrics" / "recurrent.jsonl"
        if not rows_path.is_file():
            continue
        r = tomllib.loads(recipe.read_text())
        agent = r.get("agent", {})
        task = TASKS.get(r.get("env", {}).get("id", ""))
        if task is None:
            continue
        mode = "bptt" if agent.get("sg", "dni") == "none" else ("dni-aux" if agent.get("aux") else "dni")
        rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
        summary_path = recipe.parent / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        runs.append(
            {
                "name": recipe.parent.name,
                "task": task,
                "T": agent.get("window", 3),
                "mode": mode,
                "batch": agent.get("batch_size", 32),
                "rows": rows,
                "seed": r.get("run", {}).get("seed", 0),
                "steps": r.get("run", {}).get("steps", 0),
                "agent": agent,
                "env": r.get("env", {}),
                "completed": summary.get("status") == "completed",
                "eval": summary.get("eval", {}),
            }
        )
    return runs


def _xy(rows: list[dict], key: str, scale: float = 1.0) -> tuple[list, list]:
    pts = [(r["step"] * scale, r[key]) for r in rows if key in r and r[key] is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


STYLE = {"bptt": "--", "dni": "-", "dni-aux": ":"}


def plot_copy(runs: list[dict], task: str, out: Path) -> Path | None:
    runs = [r for r in runs if r["task"] == task]
    if not runs:
        return None
    ts = sorted({r["T"] for r in runs})
    colors = {t: f"C{i}" for i, t in enumerate(ts)}
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.5))
    for r in sorted(runs, key=lambda r: (r["T"], r["mode"], r["name"])):
        c, ls = colors[r["T"]], STYLE[r["mode"]]
        ax[0].plot(*_xy(r["rows"], "max_length"), ls, color=c, label=f"{r['name']} (solved)")
        level = [{**row, "level": row["length"] * row.get("repeats", 1)} for row in r["rows"] if "length" in row]
        ax[0].plot(*_xy(level, "level"), ls, color=c, alpha=0.3)
        if r["mode"] != "bptt":
            ax[1].plot(*_xy(r["rows"], "sg_cosine"), ls, color=c, label=r["name"])
            ax[2].plot(*_xy(r["rows"], "sg_norm_ratio"), ls, color=c, label=r["name"])
    unit = "N·R" if task == "repeatcopy" else "N"
    ax[0].set(
        xlabel="training windows",
        ylabel=f"max length solved ({unit}); faint: level in training",
        title=f"{task}: curriculum, BPTT (dashed) vs DNI (solid)",
    )
    ax[1].set(xlabel="training windows", ylabel="cos(M(s), bootstrapped target)", title="SG cosine at boundary")
    ax[2].set(xlabel="training windows", ylabel="||M(s)|| / ||target||", title="SG norm ratio at boundary")
    ax[2].axhline(1.0, color="grey", lw=0.5)
    for a in ax:
        a.grid(alpha=0.3)
        if a.lines:
            a.legend(fontsize=7)
    return _save(fig, out / f"recurrent-{task}.png")


VALID_TOP = 3.2  # BPC; the diverged M(h, c) cells sit at ~4.86 and would flatten every other curve
DIVERGED_BPC = 4.0  # a DNI cell whose best validation BPC stays above this diverged: left out of the SG panels


def diverged(run: dict) -> bool:
    """Whether a run's best validation BPC stayed above ``DIVERGED_BPC`` (its SG ratios would hide the rest)."""
    valid = [row["valid_bpc"] for row in run["rows"] if row.get("valid_bpc") is not None]
    return bool(valid) and min(valid) > DIVERGED_BPC


def one_seed(runs: list[dict]) -> list[dict]:
    """The first run (by name) of each setting: repeats with other seeds belong to the paired figure."""
    return [r for g in settings(runs) for r in g[:1]] + [r for r in runs if not r["completed"]]


def plot_charlm(runs: list[dict], out: Path) -> Path | None:
    """Five panels and a legend: validation and training BPC, the core's gradient norm, and, for the DNI runs that did
    not diverge, the synthetic gradient's cosine and norm ratio to its bootstrapped target (on their own
    axes: a near-zero cosine is the char LM's story, and one shared axis with the ratios hid it)."""
    runs = [r for r in runs if r["task"] == "charlm"]
    if not runs:
        return None
    fig, axes = plt.subplots(2, 3, figsize=(18, 9))
    (valid_ax, train_ax, grad_ax), (cos_ax, ratio_ax, legend_ax) = axes
    colour = plt.get_cmap("tab20")  # 20 distinct colours: one per run
    for i, r in enumerate(sorted(runs, key=lambda r: (r["T"], r["mode"], r["name"]))):
        chars = r["T"] * r["batch"] / 1e6  # characters (millions) per window
        style = {"ls": STYLE[r["mode"]], "color": colour(i % 20), "label": r["name"]}
        valid_ax.plot(*_xy(r["rows"], "valid_bpc", chars), marker="o", ms=3, **style)
        train_ax.plot(*_xy(r["rows"], "train_bpc", chars), **style)
        grad_ax.semilogy(*_xy(r["rows"], "grad_norm", chars), **style)
        if r["mode"] != "bptt" and not diverged(r):
            cos_ax.plot(*_xy(r["rows"], "sg_cosine", chars), **style)
            ratio_ax.plot(*_xy(r["rows"], "sg_norm_ratio", chars), **style)
    x = "training characters (M)"
    valid_ax.set(xlabel=x, ylabel="validation BPC", ylim=(None, VALID_TOP),
                 title=f"validation BPC (axis cut at {VALID_TOP}: diverged runs above)")
    train_ax.set(xlabel=x, ylabel="training BPC (mean since last log)", title="training BPC")
    grad_ax.set(xlabel=x, ylabel="core gradient norm before clipping", title="core gradient norm")
    cos_ax.set(xlabel=x, ylabel="cos(M(h), bootstrapped target)",
               title=f"DNI: SG cosine at the boundary (runs that diverged, best BPC > {DIVERGED_BPC}, left out)")
    cos_ax.axhline(0.0, color="grey", lw=0.5)
    ratio_ax.set(xlabel=x, ylabel="||M(h)|| / ||target||", yscale="log", title="DNI: SG norm ratio at the boundary")
    ratio_ax.axhline(1.0, color="grey", lw=0.5)
    for a in (valid_ax, train_ax, grad_ax, cos_ax, ratio_ax):
        a.grid(alpha=0.3)
    legend_ax.axis("off")
    legend_ax.legend(*valid_ax.get_legend_handles_labels(), loc="center", fontsize=8, ncol=2,
                     title="dashed: BPTT, solid: DNI, dotted: DNI + Aux")
    fig.suptitle("char LM (Shakespeare): BPTT T=8 / T=40 vs DNI T=8")
    return _save(fig, out / "recurrent-charlm.png")


def settings(runs: list[dict]) -> list[list[dict]]:
    """Completed runs grouped by setting (same env, agent and budget; any seed), one run per seed, by seed."""
    groups: dict[str, dict[int, dict]] = {}
    for r in sorted(runs, key=lambda r: r["name"]):
        if r["completed"]:
            key = json.dumps({"env": r["env"], "agent": r["agent"], "steps": r["steps"]}, sort_keys=True)
            groups.setdefault(key, {}).setdefault(r["seed"], r)
    return [[g[seed] for seed in sorted(g)] for g in groups.values()]


def _core(run: dict) -> str:
    """What a DNI run shares with its BPTT baseline: env, budget and every agent key but the SG's and Aux's."""
    core = {k: v for k, v in run["agent"].items() if not k.startswith("sg") and k != "aux"}
    return json.dumps({"env": run["env"], "steps": run["steps"], "agent": core}, sort_keys=True)


def paired(runs: list[dict]) -> list[tuple[list[dict], dict[int, dict[str, float]]]]:
    """Each char-LM DNI setting with, per seed that its BPTT baseline also ran, DNI − BPTT in best valid/test BPC."""
    groups = settings([r for r in runs if r["task"] == "charlm"])
    baselines = {_core(g[0]): {r["seed"]: r for r in g} for g in groups if g[0]["mode"] == "bptt"}
    out = []
    for g in groups:
        base = baselines.get(_core(g[0]))
        if g[0]["mode"] == "bptt" or base is None:
            continue
        keys = ("valid_bpc", "test_bpc")
        diffs = {r["seed"]: {k: r["eval"][k] - base[r["seed"]]["eval"][k] for k in keys}
                 for r in g if r["seed"] in base and all(k in r["eval"] and k in base[r["seed"]]["eval"] for k in keys)}
        if diffs:
            out.append((g, diffs))
    return out


def _mean_se(xs: list[float]) -> tuple[float, float]:
    """Mean and standard error of two or more values."""
    return statistics.fmean(xs), statistics.stdev(xs) / math.sqrt(len(xs))


DIFF_LIM = 0.06  # BPC; a paired difference beyond it is drawn at the edge with its value written beside it


def plot_charlm_paired(runs: list[dict], out: Path) -> Path | None:
    """DNI − BPTT per seed for the char-LM DNI settings run with several seeds (valid and test), and the longest
    budget's validation curves. Settings with one seed stay in the results tables (one dot says little)."""
    pairs = [p for p in paired(runs) if len(p[1]) > 1]
    if not pairs:
        return None
    varying = sorted({k for g, _ in pairs for k in g[0]["agent"]
                      if len({json.dumps(h[0]["agent"].get(k)) for h, _ in pairs}) > 1})
    fig, (valid_ax, test_ax, curve_ax) = plt.subplots(1, 3, figsize=(20, 6.5), width_ratios=(2, 2, 1.6))
    ticks = []
    for x, (g, diffs) in enumerate(pairs):
        agent = g[0]["agent"]
        setting = "\n".join(f"{k}={agent[k]}" for k in varying if k in agent)
        ticks.append(f"{setting}\n{g[0]['steps'] // 1000}k windows\nn={len(diffs)}")
        for ax, key in ((valid_ax, "valid_bpc"), (test_ax, "test_bpc")):
            ys = [d[key] for d in diffs.values()]
            shown = [max(-DIFF_LIM, min(DIFF_LIM, y)) for y in ys]
            ax.scatter([x] * len(ys), shown, s=14, color="C0", alpha=0.6, zorder=3)
            for y, y_shown in zip(ys, shown):
                if y != y_shown:
                    ax.annotate(f"{y:+.3f}", (x, y_shown), xytext=(4, 0), textcoords="offset points", fontsize=7)
            mean, se = _mean_se(ys)
            if abs(mean) <= DIFF_LIM:
                ax.errorbar(x + 0.15, mean, yerr=se, fmt="s", color="C3", capsize=4, zorder=4)
                ax.annotate(f"{mean:+.4f}", (x + 0.15, mean), xytext=(5, -3), textcoords="offset points", fontsize=7,
                            color="C3")
    for ax, split in ((valid_ax, "validation"), (test_ax, "test")):
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set(ylim=(-DIFF_LIM * 1.05, DIFF_LIM * 1.05), ylabel=f"DNI − BPTT, best {split} BPC (same seed)",
               title=f"DNI T=8 vs BPTT T=8 on {split}: dots seeds, red mean ± s.e. (below 0: DNI better)")
        ax.set_xticks(range(len(ticks)), ticks, fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    longest = max(r["steps"] * r["T"] * r["batch"] for r in runs if r["task"] == "charlm" and r["completed"])
    for i, g in enumerate(s for s in settings([r for r in runs if r["task"] == "charlm"])
                          if s[0]["steps"] * s[0]["T"] * s[0]["batch"] == longest):
        agent = g[0]["agent"]
        label = f"{g[0]['mode'].upper()} T={g[0]['T']}" + "".join(
            f", {k}={agent[k]}" for k in varying if k in agent and g[0]["mode"] != "bptt")
        for j, r in enumerate(g):
            curve_ax.plot(*_xy(r["rows"], "valid_bpc", r["T"] * r["batch"] / 1e6), STYLE[r["mode"]], marker="o", ms=2,
                          color=f"C{i}", alpha=0.8, label=f"{label} (seeds {', '.join(str(r['seed']) for r in g)})"
                          if j == 0 else None)
    curve_ax.set(xlabel="training characters (M)", ylabel="validation BPC", ylim=(2.15, 2.6),
                 title=f"validation BPC at the longest budget ({longest / 1e6:.1f} M characters)")
    curve_ax.grid(alpha=0.3)
    curve_ax.legend(fontsize=7)
    fig.suptitle("char LM (Shakespeare): DNI T=8 minus BPTT T=8, paired by seed (best validation / its test BPC)")
    return _save(fig, out / "recurrent-charlm-paired.png")


def plot_all(root: Path, out: Path) -> list[Path]:
    """Every figure the run folders under ``root`` allow, written into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(root)
    paths = (plot_copy(runs, "copy", out), plot_copy(runs, "repeatcopy", out), plot_charlm(one_seed(runs), out),
             plot_charlm_paired(runs, out))
    return [path for path in paths if path is not None]
