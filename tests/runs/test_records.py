"""Record files: floats rounded where they are written, every JSON file written whole."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from runs.records import RunRecords, read_evals, rounded, write_json


def test_floats_are_rounded_in_one_place(tmp_path: Path) -> None:
    assert rounded({"a": [7.450000000000001, 1e-4, 3], "b": 0.30000000000000004, "c": True}) == {
        "a": [7.45, 1e-4, 3], "b": 0.3, "c": True}
    write_json(tmp_path / "x" / "s.json", {"err": 100 * (1 - 0.9255)})
    assert (tmp_path / "x" / "s.json").read_text() == '{\n  "err": 7.45\n}\n'
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["s.json"]  # no temporary file left


def test_run_records_round_metrics_and_summary(tmp_path: Path) -> None:
    records = RunRecords(tmp_path, {"run": {"name": "r", "steps": 3}})
    records.record("head", "metrics", 1, {"loss": 0.1 + 0.2})
    records.record("head", "eval", 2, {"final": True, "test_error": 100 * (1 - 0.9255)})
    summary = records.finish("completed")
    assert json.loads((tmp_path / "metrics" / "head.jsonl").read_text())["loss"] == 0.3
    assert json.loads((tmp_path / "summary.json").read_text())["eval"]["test_error"] == 7.45
    assert summary["status"] == "completed"


def test_summary_is_the_whole_record_of_a_finished_run(tmp_path: Path) -> None:
    """results/ keeps recipe.toml + summary.json: the summary carries the metadata and every evaluation."""
    records = RunRecords(tmp_path, {"run": {"name": "r", "steps": 3}})
    records.record("head", "ready", -1, {"pid": 7, "device": "cpu"})
    records.record("head", "eval", 1, {"round": 0, "at": 1, "test_error": 50.0})
    records.record("head", "eval", 2, {"round": 1, "at": 2, "final": True, "test_error": 25.0})
    records.finish("completed")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["meta"]["agents"]["head"] == {"pid": 7, "device": "cpu"}
    assert summary["meta"]["ended"] is not None
    live = read_evals(tmp_path)
    (tmp_path / "meta.json").unlink()
    shutil.rmtree(tmp_path / "metrics")  # what the repository does not keep
    assert read_evals(tmp_path) == live and [r["test_error"] for r in live] == [50.0, 25.0]
