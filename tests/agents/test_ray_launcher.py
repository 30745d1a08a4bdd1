"""The Ray backend on a local Ray instance: a tiny MNIST run through the CLI, the same learning curve as local
processes, a lost or killed agent that fails the run within seconds (naming agent and node, keeping the
records), a clear error when Ray is missing or cannot place the run."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agents import NodeSpec

ROOT = Path(__file__).resolve().parents[2]
RECIPE = "runs/mnist-fcn4-cdni.toml"
# the recipe's own model and batches (so that 60 steps visibly learn), on 2048 training / 1000 test images
TINY = ["run.steps=60", "run.eval_every=0", "run.metrics_every=10", "env.kwargs.limit=2048",
        'env.eval={split="test", limit=1000}']
HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed: pip install 'dnilab[ray]' (make test does)")


def sets(*overrides: str) -> list[str]:
    return [x for o in (*TINY, *overrides) for x in ("--set", o)]


def dnilab(*args: str, timeout: float = 280) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runs.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def head_losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics" / "head.jsonl").read_text().splitlines() if line]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


# --- without Ray ---------------------------------------------------------------------------------------


def test_missing_ray_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.ray_launcher import RayLauncher, RayUnavailable
    from runs.execute import prepare
    from runs.recipe import RecipeError

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(RayUnavailable, match=r"pip install 'dnilab\[ray\]'"):
        RayLauncher()
    with pytest.raises(RecipeError, match=r"run.launcher: .*pip install 'dnilab\[ray\]'"):
        prepare(ROOT / RECIPE, [], launcher="ray")


def test_gpu_actor_sees_its_gpu_as_cuda0() -> None:
    from agents import AgentSpec
    from agents.ray_launcher import _local_device

    agent = AgentSpec(name="l2", module={"kind": "linear"}, device="cuda:3")
    spec = NodeSpec("l2", "x:Y", {"spec": agent, "device": "cuda:3", "seed": 3}, device="cuda:3", num_gpus=1.0)
    local = _local_device(spec)
    assert local.device == "cuda:0" and local.kwargs["device"] == "cuda:0" and local.kwargs["spec"].device == "cuda:0"
    assert local.kwargs["seed"] == 3 and spec.kwargs["spec"].device == "cuda:3"  # the original is untouched
    cpu = NodeSpec("env", "x:Y", device="cpu")
    assert _local_device(cpu) is cpu


# --- through the CLI: starts and stops its own local Ray instance ----------------------------------------


LOCKED = "runs/mnist-fcn4-backprop.toml"


@needs_ray
@pytest.mark.timeout(900)
def test_ray_run_completes_and_matches_local_processes(tmp_path: Path) -> None:
    """Same recipe, same seed: the Ray backend (its own local instance) learns like local processes.

    Backprop edges make every step's order independent of timing, so the curves must agree even on a
    loaded machine (with DNI edges, when a target arrives is timing-dependent)."""
    ray_dir, local_dir = tmp_path / "ray", tmp_path / "local"
    out = dnilab("run", LOCKED, *sets(), "--launcher", "ray", "--out", str(ray_dir), "--quiet")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == str(ray_dir)
    s_ray = json.loads((ray_dir / "summary.json").read_text())
    assert s_ray["status"] == "completed"
    meta = json.loads((ray_dir / "meta.json").read_text())
    assert set(meta["agents"]) == {"env", "l1", "l2", "l3", "head"}
    assert all(a["node_ip"] and a["pid"] for a in meta["agents"].values())
    assert all((ray_dir / "checkpoints" / f"{a}.pt").exists() for a in ("l1", "l2", "l3", "head"))
    assert not any(pid_alive(a["pid"]) for a in meta["agents"].values())  # the actors are gone with the run

    out = dnilab("run", LOCKED, *sets(), "--out", str(local_dir), "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    s_local = json.loads((local_dir / "summary.json").read_text())
    ray_curve, local_curve = head_losses(ray_dir), head_losses(local_dir)
    common = sorted(set(ray_curve) & set(local_curve))
    assert len(common) >= 4
    # both learn ...
    for curve in (ray_curve, local_curve):
        assert curve[common[-1]] < 0.75 * curve[common[0]]
    # ... the same curve within the noise of asynchronous message timing (two local runs differ as much)
    gaps = [abs(ray_curve[k] - local_curve[k]) for k in common]
    assert sum(gaps) / len(gaps) < 0.25, (ray_curve, local_curve)
    assert abs(s_ray["eval"]["test_error"] - s_local["eval"]["test_error"]) < 8, (s_ray["eval"], s_local["eval"])
    assert s_ray["eval"]["test_error"] < 60  # chance is 90 %


# --- in this process, on a shared local Ray instance --------------------------------------------------------


@pytest.fixture(scope="module")
def ray_instance() -> Any:
    import ray

    ray.init(address="local", num_cpus=5, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _run_and_disrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, disrupt: Any,
                     overrides: tuple[str, ...] = ("run.steps=1000000",),
                     ) -> tuple[dict[str, Any], dict[str, Any], float, Path]:
    """Start a long run on Ray; once the head reports training metrics, call ``disrupt(launcher, meta)``.
    Returns (summary, meta, seconds from the disruption to the end of the run, run folder)."""
    from agents.ray_launcher import RayLauncher

    execute_mod = importlib.import_module("runs.execute")  # the module (``runs.execute`` is also a function)

    held: dict[str, Any] = {}
    real = execute_mod.make_launcher

    def make_launcher(recipe: dict[str, Any], ctx: Any) -> Any:
        held["launcher"] = launcher = real(recipe, ctx)
        assert isinstance(launcher, RayLauncher)
        return launcher

    monkeypatch.setattr(execute_mod, "make_launcher", make_launcher)
    run_dir = tmp_path / "run"
    recipe, plan = execute_mod.prepare(ROOT / RECIPE, [*TINY, *overrides], launcher="ray")
    disrupted: dict[str, float] = {}

    def watch() -> None:
        head = run_dir / "metrics" / "head.jsonl"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if head.exists() and head.read_text().strip():
                meta = json.loads((run_dir / "meta.json").read_text())
                disrupt(held["launcher"], meta)
                disrupted["t"] = time.monotonic()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, summary = execute_mod.execute(recipe, plan, out=run_dir, progress=False)
    ended = time.monotonic()
    watcher.join(5)
    assert "t" in disrupted, f"the run ended before it could be disrupted: {summary}"
    meta = json.loads((run_dir / "meta.json").read_text())
    return summary, meta, ended - disrupted["t"], run_dir


def _kill_l2(launcher: Any, meta: dict[str, Any]) -> None:
    import ray

    ray.kill(launcher.actors["l2"], no_restart=True)


def _assert_failed_but_kept(summary: dict[str, Any], meta: dict[str, Any], run_dir: Path) -> None:
    assert summary["status"] == "failed"
    assert "'l2'" in summary["error"] and meta["agents"]["l2"]["node_ip"] in summary["error"]  # agent and node
    assert (run_dir / "metrics" / "head.jsonl").read_text().strip()
    for agent in ("l1", "l3", "head"):  # the survivors saved their checkpoints when told to stop
        assert (run_dir / "checkpoints" / f"{agent}.pt").exists()
    assert json.loads((run_dir / "meta.json").read_text())["ended"]


@needs_ray
@pytest.mark.timeout(600)
def test_silent_agent_is_detected_by_heartbeats(ray_instance: Any, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """l2 freezes (SIGSTOP: as if its machine dropped off the network): heartbeats time out in seconds."""
    frozen: list[int] = []

    def freeze(launcher: Any, meta: dict[str, Any]) -> None:
        frozen.append(meta["agents"]["l2"]["pid"])
        os.kill(frozen[0], signal.SIGSTOP)

    try:
        summary, meta, took, run_dir = _run_and_disrupt(tmp_path, monkeypatch, freeze)
    finally:
        for pid in frozen:  # normally already killed by the launcher's shutdown
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    _assert_failed_but_kept(summary, meta, run_dir)
    assert "sent no heartbeat" in summary["error"]
    print(f"l2 frozen; the run ended {took:.1f} s later: {summary['error']}")
    assert took < 30, f"the run took {took:.1f} s to stop after l2 went silent"
    deadline = time.monotonic() + 20  # ray.kill is asynchronous: the raylet reaps the frozen worker shortly after
    while pid_alive(frozen[0]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not pid_alive(frozen[0])


@needs_ray
@pytest.mark.timeout(600)
def test_killed_actor_fails_the_run_at_once(ray_instance: Any, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    summary, meta, took, run_dir = _run_and_disrupt(tmp_path, monkeypatch, _kill_l2)
    _assert_failed_but_kept(summary, meta, run_dir)
    assert "exited with code -9" in summary["error"]
    print(f"l2 killed; the run ended {took:.1f} s later: {summary['error']}")
    assert took < 30, f"the run took {took:.1f} s to stop after l2 was killed"
    assert ray_instance.is_initialized()  # a Ray this launcher did not start is left running


@needs_ray
@pytest.mark.timeout(600)
def test_killed_actor_is_restarted_and_the_run_completes(ray_instance: Any, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """With run.restarts = 1 a dead actor comes back as a new actor in its bundle (a new endpoint, peers re-wired)."""
    summary, meta, _, run_dir = _run_and_disrupt(tmp_path, monkeypatch, _kill_l2, overrides=(
        "run.steps=600", "run.restarts=1", "run.checkpoint_every=20"))
    assert summary["status"] == "completed", summary.get("error")
    [restart] = summary["restarts"]
    assert restart["agent"] == "l2" and restart["attempt"] == 1
    assert summary["agents"]["l2"]["steps"] > restart["resumed_step"]  # it trained again once back
    assert not any(pid_alive(a["pid"]) for a in meta["agents"].values())


@needs_ray
def test_unplaceable_run_fails_clearly(ray_instance: Any) -> None:
    from agents import Supervisor
    from agents.ray_launcher import RayLauncher

    class Quiet:
        def record(self, sender: str, verb: str, step: int, meta: dict[str, Any]) -> None:
            pass

    launcher = RayLauncher()
    specs = [NodeSpec("big", "x:Y", num_gpus=8.0)]
    outcome = Supervisor(specs, launcher, Quiet(), "noplace", **launcher.supervisor_kwargs(["big"])).run()
    assert outcome.status == "failed" and "need 1 and 8" in (outcome.error or "")
    assert launcher.pg is None and ray_instance.is_initialized()
