"""What a run survives (docs/FAULTS.md), all in one process (inproc): stray input, dying agents, restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from runs import execute, prepare
from tests.runs.conftest import TINY


def _run(out: Path, *extra: str, recipe: str = "runs/mnist-fcn4-cdni.toml") -> dict:
    prepared, plan = prepare(recipe, [*TINY, "run.launcher=inproc", *extra])
    _, summary = execute(prepared, plan, out=out, progress=False)
    return summary


def test_stray_input_is_rejected_counted_and_the_run_goes_on(tmp_path: Path) -> None:
    summary = _run(tmp_path / "run", 'overrides.l2.factory="tests.agents.helpers:StrayAgent"')
    assert summary["status"] == "completed", summary.get("error")
    rejected = summary["rejected"]
    for receiver in ("l1", "l3", "supervisor"):  # l2's peers, and the control inbox
        assert rejected[receiver]["?"]["count"] == 2  # the garbage and the pickle: unreadable headers
        assert "not valid JSON" in rejected[receiver]["?"]["reason"]
        assert rejected[receiver]["l2"]["count"] == 1  # the wrong kind
        assert "announces 1073741824 bytes" in rejected[receiver]["intruder"]["reason"]  # nothing allocated
    rows = (tmp_path / "run" / "metrics" / "l3.jsonl").read_text()
    assert '"rejected/l2": 1' in rows  # counted in the receiver's metrics too


def test_a_peer_sending_malformed_messages_in_a_row_fails_the_run_naming_it(tmp_path: Path) -> None:
    summary = _run(tmp_path / "run", 'overrides.l2.factory="tests.agents.helpers:BabblingAgent"')
    assert summary["status"] == "failed"
    assert "peer 'l2' sent 10 malformed messages in a row to 'l3'" in summary["error"]


def test_a_dead_agent_is_restarted_from_its_checkpoint_and_the_run_goes_on(tmp_path: Path) -> None:
    summary = _run(tmp_path / "run", 'overrides.l2.factory="tests.agents.helpers:CrashOnceAgent"',
                   "run.restarts=1", "run.checkpoint_every=10")
    assert summary["status"] == "completed", summary.get("error")
    [restart] = summary["restarts"]
    assert restart["agent"] == "l2" and restart["attempt"] == 1
    assert restart["resumed_step"] >= 19  # its checkpoint at 20 steps, not a fresh start
    assert restart["steps_lost"] >= 0
    assert summary["agents"]["l1"]["steps"] == 40  # the dni sender kept training on M while l2 was down
    assert summary["agents"]["l2"]["steps"] >= 30  # the restored counter went on from 20
    assert (tmp_path / "run" / "metrics" / "restarts.jsonl").exists()


def test_an_agent_that_dies_more_often_than_allowed_fails_the_run(tmp_path: Path) -> None:
    summary = _run(tmp_path / "run", 'overrides.l2.factory="tests.agents.helpers:ExplodingAgent"',
                   "run.restarts=1", "run.checkpoint_every=10")
    assert summary["status"] == "failed"
    assert "'l2'" in summary["error"] and "restarted 1 time(s) already, run.restarts = 1" in summary["error"]
    assert len(summary["restarts"]) == 1


@pytest.mark.parametrize("factory", ["CrashInEvalOnceAgent", "CrashInFinalEvalOnceAgent"])
def test_an_agent_that_dies_during_an_evaluation_pass_gets_the_pass_repeated(tmp_path: Path, factory: str) -> None:
    summary = _run(tmp_path / "run", f'overrides.l2.factory="tests.agents.helpers:{factory}"', "run.restarts=1",
                   "run.checkpoint_every=10")
    assert summary["status"] == "completed", summary.get("error")
    assert [r["agent"] for r in summary["restarts"]] == ["l2"]
    assert [e["at"] for e in summary["evals"]][-1] == 40  # the final pass, whole
    assert 20 in [e["at"] for e in summary["evals"]]
