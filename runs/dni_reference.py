"""``dnilab reference``: the one-process DNI reference on MNIST (agents.dni_reference), with records.

It loads MNIST's train and test splits, runs ``agents.run_reference`` with a progress display, prints the
final test error and, per layer, how the applied gradient and M's target agree with the true gradient
over the last fifth of training, and writes everything as one JSON record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents import ReferenceConfig, run_reference, summarize_probes

from .progress import RunProgress
from .records import write_json


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
        write_json(json_out, record)
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
