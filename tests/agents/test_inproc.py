"""All agents in one process (inproc): the same agent code, reproducible step for step."""

from __future__ import annotations

import json
from pathlib import Path

from runs import execute, prepare
from tests.runs.conftest import TINY


def _run(out: Path, *extra: str) -> tuple[dict, list[float]]:
    recipe, plan = prepare("runs/mnist-fcn4-dni.toml", [*TINY, "run.launcher=inproc", *extra])
    run_dir, summary = execute(recipe, plan, out=out, progress=False)
    rows = [json.loads(x) for x in (run_dir / "metrics" / "head.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]  # the last row, written at stop, has counters only
    return summary, losses


def test_inproc_runs_are_reproducible(tmp_path: Path) -> None:
    first, losses_a = _run(tmp_path / "a")
    second, losses_b = _run(tmp_path / "b")
    assert first["status"] == second["status"] == "completed"
    assert losses_a == losses_b and len(losses_a) >= 3
    assert first["eval"]["test_error"] == second["eval"]["test_error"]


def test_a_long_locked_chain_does_not_stall(tmp_path: Path) -> None:
    """Ten backprop agents: the environment runs up to 10 x window steps ahead of the head, whose label store
    is sized for it (run.capacity = 0); a store of 32 would drop labels the head waits for and stall the chain."""
    recipe, plan = prepare("runs/mnist-fcn4-backprop.toml", [*TINY, "run.launcher=inproc", "model.depth=10",
                                                              "run.eval_every=0"])
    assert recipe["run"]["capacity"] >= 10 * recipe["run"]["window"] + 2
    _, summary = execute(recipe, plan, out=tmp_path / "run", progress=False)
    assert summary["status"] == "completed"
    assert {a["steps"] for name, a in summary["agents"].items() if name != "env"} == {40}


def test_a_decaying_lr_reaches_every_agent(tmp_path: Path) -> None:
    """``optimizer.decay`` in the agents' defaults: each feed-forward agent anneals on the run's clock."""
    recipe, plan = prepare("runs/mnist-fcn4-dni.toml", [*TINY, "run.launcher=inproc", "run.eval_every=0",
                                                         'defaults.agent.optimizer={lr=1e-3, decay="cosine"}'])
    run_dir, summary = execute(recipe, plan, out=tmp_path / "run", progress=False)
    assert summary["status"] == "completed"
    for name in (a.name for a in plan.agents):
        rows = [json.loads(x) for x in (run_dir / "metrics" / f"{name}.jsonl").read_text().splitlines()]
        lrs = [r["lr"] for r in rows]
        assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.05e-3, name
