"""PNG learning curves of a run folder: training loss, composed test error, interface quality."""

from __future__ import annotations

from pathlib import Path

from .records import read_jsonl


def _series(rows: list[dict], key: str, x: str = "step") -> tuple[list, list]:
    pts = [(r[x], r[key]) for r in rows if key in r and x in r and r[key] is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def learning_curves(run_dir: Path) -> Path | None:
    """Write ``plots/learning_curves.png``: one panel per kind of metric found. Returns its path."""
    metrics = Path(run_dir) / "metrics"
    streams = {p.stem: read_jsonl(p) for p in sorted(metrics.glob("*.jsonl"))}
    if not streams:
        return None
    evals = streams.pop("eval", [])
    panels: list[tuple[str, list[tuple[str, list, list]]]] = []
    loss = [(name, *_series(rows, "loss")) for name, rows in streams.items()]
    panels.append(("training loss", [c for c in loss if c[1]]))
    err = [(name, *_series(rows, "train_error")) for name, rows in streams.items()]
    err += [("composed test", *_series(evals, k)) for k in ("test_error",)]
    panels.append(("error (%)", [c for c in err if c[1]]))
    other_eval = [(k, *_series(evals, k)) for k in ("valid_bpc", "test_bpc", "max_length", "test_accuracy")]
    panels.append(("evaluation", [c for c in other_eval if c[1]]))
    quality = []
    for name, rows in streams.items():
        keys = sorted({k for r in rows for k in r if k.endswith(("sg_cosine", "si_rel_error"))})
        quality += [(f"{name}: {k}", *_series(rows, k)) for k in keys]
    panels.append(("interface quality", quality))
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    import matplotlib  # here, not at the top: every spawned agent process imports this package

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels):
        for label, xs, ys in curves:
            ax.plot(xs, ys, label=label, marker="o" if len(xs) < 20 else None)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(run_dir) / "plots"
    out.mkdir(exist_ok=True)
    path = out / "learning_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
