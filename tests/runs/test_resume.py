"""``dnilab resume``: a failed or stopped run continues from its checkpoints, in its own folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runs import RecipeError, execute, prepare, resume

from .conftest import TINY


def test_a_failed_run_resumes_from_its_checkpoints_to_its_budget(tmp_path: Path) -> None:
    recipe, plan = prepare("runs/mnist-fcn4-cdni.toml", [
        *TINY, "run.launcher=inproc", "run.checkpoint_every=10",
        'overrides.l2.factory="tests.agents.helpers:CrashOnceAgent"'])
    run_dir, first = execute(recipe, plan, out=tmp_path / "run", progress=False)
    assert first["status"] == "failed" and "crash once" in first["error"]
    saved = json.loads((run_dir / "metrics" / "env.jsonl").read_text().splitlines()[-1])["steps"]
    assert saved < 40
    summary = resume(run_dir, progress=False)
    assert summary["status"] == "completed", summary.get("error")
    assert summary["eval"]["examples"] > 0
    assert summary["resumptions"][0]["after"] == "failed"
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["resumptions"] == summary["resumptions"] and meta["ended"]
    steps = [json.loads(r)["steps"] for r in (run_dir / "metrics" / "l1.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] >= 30  # the counter went on from the checkpoint, same file
    with pytest.raises(RecipeError, match="already completed"):
        resume(run_dir, progress=False)
