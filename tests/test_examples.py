"""The examples in examples/ run as a user would run them, and say what they promise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _example(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # tiny models: one thread each
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def test_run_recipe(tmp_path: Path) -> None:
    out = _example("examples/run_recipe.py", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("completed: test error")
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"
    assert {p.name for p in (tmp_path / "run" / "tb").iterdir()} >= {"l1", "head", "eval"}


def test_dni_plain_pytorch() -> None:
    out = _example("examples/dni_plain_pytorch.py", "--steps", "300")
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("test error") and float(last.split()[2]) < 50  # chance is 90 %
