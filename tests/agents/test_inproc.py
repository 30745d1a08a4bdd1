"""All agents in one process (inproc): the same agent code, reproducible step for step."""

from __future__ import annotations

import json
from pathlib import Path

from runs import execute, prepare
from tests.runs.conftest import TINY


def _run(out: Path, *extra: str) -> tuple[dict, list[float]]:
    recipe, plan = prepare("runs/mnist-fcn4-dni.toml", [*TINY, "run.launcher=inproc", *extra])
    run_dir, summary = execute(recipe, plan, out=out, progress=False)
    losses = [json.loads(x)["loss"] for x in (run_dir / "metrics" / "head.jsonl").read_text().splitlines()]
    return summary, losses


def test_inproc_runs_are_reproducible(tmp_path: Path) -> None:
    first, losses_a = _run(tmp_path / "a")
    second, losses_b = _run(tmp_path / "b")
    assert first["status"] == second["status"] == "completed"
    assert losses_a == losses_b and len(losses_a) >= 3
    assert first["eval"]["test_error"] == second["eval"]["test_error"]
