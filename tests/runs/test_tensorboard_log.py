"""Every run kind writes TensorBoard events per agent and for the evaluations, the same numbers as its JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from runs import execute, prepare
from runs.tensorboard_log import TensorBoardLog, scalars

from .conftest import CHARLM_TEXT, MULTISCALE_TINY_NET, ROOT, TINY

RUNS = ROOT / "runs"
KINDS = {
    "feedforward": (RUNS / "mnist-fcn4-dni.toml", [*TINY, "run.launcher=inproc"]),
    "multiscale": (RUNS / "multiscale-cdni.toml", [*MULTISCALE_TINY_NET, "run.steps=24", "run.eval_every=12",
                                                    "run.metrics_every=8", "run.launcher=inproc"]),
    "recurrent": (RUNS / "charlm-t8-dni.toml", ["run.steps=20", "run.log_every=10", "run.eval_every=10",
                                                 "run.launcher=inproc", f'env.kwargs={{text="{CHARLM_TEXT}"}}',
                                                 "agent.hidden=8", "agent.batch_size=2", "agent.eval_batch_size=2"]),
}


def _events(folder: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _expected(stream: str, rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for tag, value in scalars(stream, row).items():
            out.setdefault(tag, []).append((row["step"], value))
    return out


def _assert_same(written: dict, expected: dict, stream: str) -> None:
    """Same tags, same steps, same values (TensorBoard keeps 32-bit floats)."""
    assert expected and set(written) == set(expected), stream
    for tag, points in expected.items():
        assert [s for s, _ in written[tag]] == [s for s, _ in points], (stream, tag)
        assert [v for _, v in written[tag]] == pytest.approx([v for _, v in points], rel=1e-6), (stream, tag)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_stream_has_its_events(tmp_path: Path, kind: str) -> None:
    torch.set_num_threads(1)
    path, overrides = KINDS[kind]
    recipe, plan = prepare(path, overrides)
    assert recipe["run"]["kind"] == kind
    run_dir, summary = execute(recipe, plan, out=tmp_path / "run", progress=False)
    assert summary["status"] == "completed", summary.get("error")
    streams = sorted(p.stem for p in (run_dir / "metrics").glob("*.jsonl"))
    assert "eval" in streams and len(streams) >= 2  # at least one agent, and the evaluations
    assert sorted(p.name for p in (run_dir / "tb").iterdir()) == streams
    for stream in streams:
        rows = [json.loads(line) for line in (run_dir / "metrics" / f"{stream}.jsonl").read_text().splitlines()]
        _assert_same(_events(run_dir / "tb" / stream), _expected(stream, rows), stream)


def test_scalars_are_the_numbers_of_a_row() -> None:
    row = {"step": 9, "time": 0.5, "loss": 2.25, "steps": 10, "l1->l2/sg_cosine": 0.3, "placed": "cpu", "ok": True}
    assert scalars("l1", row) == {"loss": 2.25, "steps": 10.0, "l1->l2/sg_cosine": 0.3}
    evaluation = {"agent": "head", "step": 40, "time": 1.7, "round": 1, "at": 40, "final": True, "test_error": 69.1}
    assert scalars("eval", evaluation) == {"head/test_error": 69.1}


def test_without_tensorboard_a_run_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(__import__("sys").modules, "torch.utils.tensorboard", None)  # import fails
    log = TensorBoardLog(tmp_path / "tb")
    assert not log.available
    log.add("l1", {"step": 1, "loss": 1.0})
    log.add("l2", {"step": 1, "loss": 1.0})
    log.close()
    assert capsys.readouterr().err.count("tensorboard is not installed") == 1  # once, not per row
    assert not (tmp_path / "tb").exists()


def test_a_failed_run_keeps_its_events(tmp_path: Path) -> None:
    """An agent that raises fails the run: what its peers reported is in their events, as in their JSON lines."""
    torch.set_num_threads(1)
    recipe, plan = prepare(RUNS / "mnist-fcn4-dni.toml", [*TINY, "run.launcher=inproc", "run.metrics_every=2",
                                                          'overrides.l2.factory="tests.agents.helpers:ExplodingAgent"'])
    run_dir, summary = execute(recipe, plan, out=tmp_path / "run", progress=False)
    assert summary["status"] == "failed" and "boom" in summary["error"]
    rows = [json.loads(line) for line in (run_dir / "metrics" / "l1.jsonl").read_text().splitlines()]
    _assert_same(_events(run_dir / "tb" / "l1"), _expected("l1", rows), "l1")
