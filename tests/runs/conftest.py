"""Tiny recipe settings so end-to-end runs take seconds: few steps, small data, narrow layers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ["run.steps=40", "run.eval_every=20", "run.metrics_every=10", "env.kwargs.limit=2048",
        "env.kwargs.batch_size=64", 'env.eval={split="test", limit=512}', "model.hidden=32",
        'defaults.agent.optimizer={name="adam", lr=2e-3}']
# Multi-timescale recipes: little data; with MULTISCALE_TINY_NET also an 8-unit fast agent and a 16-step evaluation
MULTISCALE_TINY = ["env.kwargs.limit=60", "env.kwargs.batch_size=4"]
MULTISCALE_TINY_NET = MULTISCALE_TINY + ["levels.fast.hidden=8", "levels.fast.encoder=8", "env.eval.batch_size=4",
                                         "env.eval.limit=40", "env.eval.episode_length=16"]


def dnilab(*args: str, timeout: float = 240, **kwargs) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, in a fresh process."""
    return subprocess.run([sys.executable, "-m", "runs.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)}, **kwargs)


def composed_error(stdout: str) -> float:
    """The test error printed by ``dnilab compose``."""
    return float(stdout.split("test_error =")[1].split("%")[0])


def composed_loss(stdout: str) -> float:
    """The test loss printed by ``dnilab compose``."""
    return float(stdout.split("test_loss =")[1].split()[0])


def sets(*overrides: str) -> list[str]:
    return [x for o in (*TINY, *overrides) for x in ("--set", o)]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0
    except OSError:
        return False


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


CHARLM_TEXT = "the cat sat on the mat and the dog ate the log " * 120


def tiny_charlm(out: Path) -> Path:
    """A 40-window in-process char-LM DNI run on a small injected text, with its checkpoint."""
    from runs.execute import execute, prepare

    recipe, plan = prepare(ROOT / "runs" / "charlm-t8-dni.toml", [
        "run.steps=40", "run.log_every=20", "run.eval_every=20", "run.launcher=inproc",
        f'env.kwargs={{text="{CHARLM_TEXT}"}}', "agent.hidden=8", "agent.batch_size=2", "agent.eval_batch_size=2"])
    run_dir, summary = execute(recipe, plan, out=out, progress=False)
    assert summary["status"] == "completed", summary.get("error")
    return run_dir
