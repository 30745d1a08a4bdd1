"""``dnilab reference``: the one-process DNI reference on MNIST (agents.dni_reference), with records.

It loads MNIST's train and test splits, runs ``agents.run_reference`` with a progress display, prints the
final test error and, per layer, how the applied gradient and M's target agree with the true gradient
over the last fifth of training, and writes everything as one JSON record.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from agents import ReferenceConfig, run_reference, summarize_probes

from .progress import RunProgress
from .records import write_json
from .stats import paired_test, summarise


def reference_run(cfg: ReferenceConfig, json_out: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Run one reference on MNIST; returns (and writes, if asked) its record."""
    import environments

    splits = environments.load_mnist()
    label = f"reference {cfg.target} seed {cfg.seed}"
    with RunProgress(cfg.steps, label, enabled=progress, status="training") as bar:
        result = run_reference(cfg, splits["train"], splits["test"], progress=bar.advance_to)
    record = {"config": result.config, "test_error": round(result.test_error, 4), "evals": result.evals,
              "layers": summarize_probes(result.probes), "probes": result.probes}
    if json_out is not None:
        write_json(json_out, record, compact=True)  # per-layer probes every 50 steps: long
    return record


def describe(record: dict[str, Any]) -> str:
    """A few lines: the final error, then each layer's agreement with the true gradient."""
    cfg = record["config"]
    lines = [f"{cfg['target']} (depth {cfg['depth']}, {cfg['steps']} steps, seed {cfg['seed']}): "
             f"test error {record['test_error']:.2f} %"]
    for layer, row in record["layers"].items():
        shown = ", ".join(f"{k} {v:.3f}" for k, v in row.items())
        lines.append(f"  layer {layer}: {shown}")
    return "\n".join(lines)


def setting(record: dict[str, Any]) -> str:
    """The record's setting without its seed: the target and every option that differs from the default."""
    cfg, default = record["config"], asdict(ReferenceConfig())
    parts = [cfg["target"]] + [f"{k}={v}" for k, v in cfg.items()
                               if k not in ("target", "seed") and _plain(v) != _plain(default.get(k))]
    return " ".join(parts)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def compare(records: list[dict[str, Any]], baseline: str = "bootstrap") -> str:
    """Markdown: per setting, test error over seeds (mean ± s.e., every seed) and each layer's applied cosine
    with the true gradient; then each setting against ``baseline`` paired by seed (scipy.stats)."""
    groups: dict[str, dict[int, dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault(setting(rec), {})[rec["config"]["seed"]] = rec
    depth = max(len(r["layers"]) for r in records)
    head = "| setting | n | test error % (mean ± s.e.) | seeds | " + " | ".join(
        f"layer {i} cos" for i in range(1, depth + 1)) + " |"
    lines = [head, "|" + "---|" * (4 + depth)]
    for name, by_seed in sorted(groups.items()):
        errs = [by_seed[s]["test_error"] for s in sorted(by_seed)]
        stat = summarise(errs)
        sem = f" ± {stat['sem']:.2f}" if stat["sem"] is not None else ""
        cos = []
        for i in range(1, depth + 1):
            vals = [r["layers"].get(str(i), r["layers"].get(i, {})).get("applied_cosine") for r in by_seed.values()]
            vals = [v for v in vals if v is not None]
            cos.append(f"{sum(vals) / len(vals):.3f}" if vals else "—")
        lines.append(f"| {name} | {stat['n']} | {stat['mean']:.2f}{sem} | "
                     f"{', '.join(f'{e:.2f}' for e in errs)} | " + " | ".join(cos) + " |")
    if baseline not in groups:  # a target name: the one setting with that target, if there is just one
        named = [g for g in groups if g.split()[0] == baseline]
        baseline = named[0] if len(named) == 1 else baseline
    if baseline in groups:
        lines += ["", f"Against {baseline}, paired by seed (difference = setting − {baseline}):", "",
                  "| setting | pairs | difference (mean ± s.e.) | lower in | t p | Wilcoxon p |",
                  "|---|---|---|---|---|---|"]
        base = groups[baseline]
        for name, by_seed in sorted(groups.items()):
            seeds = sorted(set(base) & set(by_seed))
            if name == baseline or len(seeds) < 2:
                continue
            test = paired_test([base[s]["test_error"] for s in seeds], [by_seed[s]["test_error"] for s in seeds])
            fmt = lambda p: "—" if p is None else f"{p:.3g}"  # noqa: E731
            lines.append(f"| {name} | {test['n']} | {test['mean_diff']:+.2f} ± {fmt(test['sem_diff'])} | "
                         f"{test['b_below_a']}/{test['n']} | {fmt(test['t_p'])} | {fmt(test['wilcoxon_p'])} |")
    return "\n".join(lines)


def plot(records: list[dict[str, Any]], path: Path) -> Path:
    """Per layer, the applied gradient's cosine with the true gradient over training, one line per setting
    (the first seed of each), beside the test error curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    firsts: dict[str, dict[str, Any]] = {}
    for rec in sorted(records, key=lambda r: r["config"]["seed"]):
        firsts.setdefault(setting(rec), rec)
    depth = max(len(r["layers"]) for r in records)
    fig, axes = plt.subplots(1, depth + 1, figsize=(4 * (depth + 1), 3.4))
    for name, rec in sorted(firsts.items()):
        ev = rec["evals"]
        axes[0].plot([e["step"] for e in ev], [e["test_error"] for e in ev], marker="o", label=name)
        for i in range(1, depth + 1):
            rows = [p for p in rec["probes"] if p["layer"] == i]
            if rows:
                axes[i].plot([p["step"] for p in rows], [p["applied_cosine"] for p in rows], lw=0.8, label=name)
    axes[0].set(title="test error (%)", xlabel="batches", yscale="log")
    axes[0].legend(fontsize=7)
    for i in range(1, depth + 1):
        axes[i].set(title=f"layer {i}: cos(applied, true gradient)", xlabel="batches", ylim=(-0.2, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
