"""What a run survives (docs/FAULTS.md), all in one process (inproc): stray input, dying agents, restarts."""

from __future__ import annotations

from pathlib import Path

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
