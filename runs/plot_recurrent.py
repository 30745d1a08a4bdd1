"""Comparison figures of recurrent runs (BPTT vs DNI), one PNG per task, for docs/RESULTS-recurrent.md.

Usage: ``python -m runs.plot_recurrent results/recurrent docs/img``

Reads every run folder under the results root (``recipe.toml`` + ``metrics/recurrent.jsonl``) and writes:

- ``recurrent-copy.png`` / ``recurrent-repeatcopy.png``: curriculum level (solved ``max_length``, and the
  length currently being trained) vs training windows for each T, BPTT vs DNI (vs DNI + Aux if run); and
  for the DNI runs the synthetic gradient's quality at the window boundary, cosine similarity and norm
  ratio of M(s) to its bootstrapped target, vs windows;
- ``recurrent-charlm.png``: validation BPC vs training characters (equal data across T), training BPC, the
  core's gradient norm before clipping, and the DNI runs' synthetic-gradient cosine and norm ratio.
"""

from __future__ import annotations

import json
import sys
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
        runs.append(
            {
                "name": recipe.parent.name,
                "task": task,
                "T": agent.get("window", 3),
                "mode": mode,
                "batch": agent.get("batch_size", 32),
                "rows": rows,
            }
        )
    return runs


def _xy(rows: list[dict], key: str, scale: float = 1.0) -> tuple[list, list]:
    pts = [(r["step"] * scale, r[key]) for r in rows if key in r and r[key] is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


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
    fig.tight_layout()
    path = out / f"recurrent-{task}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


VALID_TOP = 3.2  # BPC; the diverged M(h, c) cells sit at ~4.86 and would flatten every other curve
DIVERGED_BPC = 4.0  # a DNI cell whose best validation BPC stays above this diverged: left out of the SG panels


def diverged(run: dict) -> bool:
    """Whether a run's best validation BPC stayed above ``DIVERGED_BPC`` (its SG ratios would hide the rest)."""
    valid = [row["valid_bpc"] for row in run["rows"] if row.get("valid_bpc") is not None]
    return bool(valid) and min(valid) > DIVERGED_BPC


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
    fig.tight_layout()
    path = out / "recurrent-charlm.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0] if args else "results/recurrent")
    out = Path(args[1] if len(args) > 1 else "docs/img")
    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(root)
    for path in (plot_copy(runs, "copy", out), plot_copy(runs, "repeatcopy", out), plot_charlm(runs, out)):
        if path is not None:
            print(path)


if __name__ == "__main__":
    main()
