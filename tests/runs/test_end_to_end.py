"""Whole runs in real spawned processes, driven through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import pytest

from agents import pick_device

from .conftest import ROOT, composed_error, composed_loss, dnilab, pid_alive, sets, summary


def test_tiny_cdni_run_completes_and_writes_its_folder(run_dir: Path) -> None:
    # synthesizers learn 20x faster than in the recipe, so 40 small steps are enough to learn something
    out = dnilab("run", "runs/mnist-fcn4-cdni.toml", *sets("defaults.edge.synthesizer={hidden=[], lr=2e-3}"),
                 "--out", str(run_dir), "--quiet")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == str(run_dir)
    s = summary(run_dir)
    assert s["status"] == "completed"
    assert 0 <= s["eval"]["test_error"] < 85  # learned something in 40 small steps (chance is 90 %)
    meta = json.loads((run_dir / "meta.json").read_text())
    assert set(meta["agents"]) == {"env", "l1", "l2", "l3", "head"}
    assert all(a["pid"] for a in meta["agents"].values())
    for i, agent in enumerate(("l1", "l2", "l3", "head")):  # "auto": cpu here, cuda:i % n with GPUs; read in each
        assert s["agents"][agent]["placed"] == meta["agents"][agent]["device"] == pick_device(i, "auto"), agent
    assert meta["versions"]["torch"] and meta["started"] and meta["ended"]
    for agent in ("l1", "l2", "l3", "head"):
        assert (run_dir / "checkpoints" / f"{agent}.pt").exists()
        assert (run_dir / "metrics" / f"{agent}.jsonl").read_text().strip()
    assert (run_dir / "plots" / "learning_curves.png").stat().st_size > 1000
    assert "backward" in (run_dir / "recipe.toml").read_text()
    # nothing outlives the run
    assert not any(pid_alive(a["pid"]) for a in meta["agents"].values())
    # the composed checkpoints give the same error as the runtime's evaluation
    comp = dnilab("compose", str(run_dir))
    assert comp.returncode == 0, comp.stderr
    assert abs(composed_loss(comp.stdout) - s["eval"]["test_loss"]) <= 1e-4  # the very network evaluated
    assert abs(composed_error(comp.stdout) - s["eval"]["test_error"]) <= 1.0  # near-ties may flip with thread count


def test_a_folder_holding_a_run_is_not_reused(run_dir: Path) -> None:
    run_dir.mkdir()
    (run_dir / "meta.json").write_text("{}")
    out = dnilab("run", "runs/mnist-fcn4-cdni.toml", *sets(), "--out", str(run_dir), "--quiet")
    assert out.returncode == 2 and "already holds a run" in out.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["meta.json"]  # nothing written over it


def test_bad_recipe_is_rejected_before_anything_starts(tmp_path: Path) -> None:
    out = dnilab("run", "runs/mnist-fcn4-cdni.toml", "--set", "defaults.edge.backward=sideways",
                 "--out", str(tmp_path / "never"))
    assert out.returncode == 2
    assert "backward" in out.stderr and "sideways" in out.stderr
    assert not (tmp_path / "never").exists()


def test_an_agent_that_raises_fails_the_run_cleanly(run_dir: Path) -> None:
    start = time.monotonic()
    out = dnilab("run", "runs/mnist-fcn4-cdni.toml",
                 *sets('overrides.l2.factory="tests.agents.helpers:ExplodingAgent"', "run.steps=400"),
                 "--out", str(run_dir), "--quiet")
    assert out.returncode == 1
    assert "boom: this agent exploded on purpose" in out.stderr
    assert "Traceback" in out.stderr and "'l2'" in out.stderr
    s = summary(run_dir)
    assert s["status"] == "failed" and "boom" in s["error"]
    meta = json.loads((run_dir / "meta.json").read_text())
    assert not any(pid_alive(a["pid"]) for a in meta["agents"].values())
    assert (run_dir / "metrics").is_dir()
    assert time.monotonic() - start < 120


def _as_from_a_terminal() -> None:
    """A shell starts background jobs (``cmd &``, nohup) with SIGINT ignored, and the run inherits that; a user at
    a terminal has it live. Restore it, so Ctrl-C is tested whatever started the test suite."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _sockets(run_dir: Path) -> Path:
    """A temp folder of the run's own, where its ipc socket files live: none may be left there (a short path:
    ipc socket paths are limited to ~100 bytes)."""
    return Path(tempfile.gettempdir()) / f"dnilab-test-{zlib.crc32(str(run_dir).encode()):08x}"


def _no_socket_files_left(run_dir: Path) -> bool:
    folder = _sockets(run_dir)
    left = list(folder.glob("dnilab-*.sock"))
    if not left:
        shutil.rmtree(folder)  # torch keeps a cache there too
    return not left


def _start_run(run_dir: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "runs.cli", "run", "runs/mnist-fcn4-cdni.toml",
           *sets("run.steps=100000", "run.eval_every=0", *extra), "--out", str(run_dir), "--quiet"]
    _sockets(run_dir).mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_from_a_terminal, env={**os.environ, "TMPDIR": str(_sockets(run_dir))})


def _wait_for_steps(run_dir: Path, agent: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    path = run_dir / "metrics" / f"{agent}.jsonl"
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= 2:
            return
        time.sleep(0.5)
    raise AssertionError(f"{agent} never reported metrics")


def test_a_killed_agent_stops_the_run_within_seconds(run_dir: Path) -> None:
    proc = _start_run(run_dir)
    try:
        _wait_for_steps(run_dir, "head")
        meta = json.loads((run_dir / "meta.json").read_text())
        victim = meta["agents"]["l2"]["pid"]
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert time.monotonic() - killed < 30
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert "'l2'" in err and "exited with code" in err
    assert summary(run_dir)["status"] == "failed"
    assert not any(pid_alive(a["pid"]) for a in meta["agents"].values())
    assert (run_dir / "checkpoints" / "head.pt").exists()  # the others saved on their way out
    assert _no_socket_files_left(run_dir)  # the dead agent's socket file too


def test_a_killed_agent_is_restarted_and_the_run_completes(run_dir: Path) -> None:
    proc = _start_run(run_dir, "run.steps=300", "run.restarts=1", "run.checkpoint_every=20")
    try:
        _wait_for_steps(run_dir, "l2")
        victim = json.loads((run_dir / "meta.json").read_text())["agents"]["l2"]["pid"]
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=200)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    s = summary(run_dir)
    [restart] = s["restarts"]
    assert restart["agent"] == "l2" and restart["resumed_step"] >= 19
    assert s["agents"]["l1"]["steps"] == 300
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["agents"]["l2"]["pid"] != victim  # READY again, from a new process
    assert not any(pid_alive(a["pid"]) for a in meta["agents"].values())
    assert _no_socket_files_left(run_dir)


@pytest.mark.parametrize(("sig", "reason"), [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")])
def test_ctrl_c_or_sigterm_stops_cleanly_and_keeps_records(run_dir: Path, sig: int, reason: str) -> None:
    proc = _start_run(run_dir)
    try:
        _wait_for_steps(run_dir, "head")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert reason in err
    assert summary(run_dir)["status"] == "stopped"
    meta = json.loads((run_dir / "meta.json").read_text())
    assert not any(pid_alive(a["pid"]) for a in meta["agents"].values())
    assert all((run_dir / "checkpoints" / f"{a}.pt").exists() for a in ("l1", "l2", "l3", "head"))
    assert _no_socket_files_left(run_dir)
