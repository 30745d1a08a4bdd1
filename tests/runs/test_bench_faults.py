"""``dnilab bench faults``: its cases hit real runs from outside, and its rows say what each run survived."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from runs.bench.cli import bench
from runs.bench.faults import Settings, bench_faults

from .conftest import TINY


def test_bad_cases_and_recipes_are_rejected_before_anything_starts(tmp_path: Path) -> None:
    runner = CliRunner()
    out = ["--out", str(tmp_path / "f")]
    result = runner.invoke(bench, ["faults", "--cases", "clean,explode", *out])
    assert result.exit_code == 2 and "unknown case(s) explode" in result.output
    result = runner.invoke(bench, ["faults", "--at", "1.5", *out])
    assert result.exit_code == 2 and "--at must lie between 0 and 1" in result.output
    result = runner.invoke(bench, ["faults", "--set", "run.stepz=3", *out])
    assert result.exit_code == 2 and "run.stepz" in result.output
    assert not (tmp_path / "f").exists()


def test_a_killed_agent_comes_back_and_stray_frames_are_counted(tmp_path: Path) -> None:
    settings = Settings(overrides=(*TINY, "run.steps=1500", "run.eval_every=0"), checkpoint_every=100, quiet=True,
                        timeout_s=300)
    rows = {r["case"]: r for r in bench_faults([0], ["clean", "kill", "stray"], settings, tmp_path)}
    assert all(r["status"] == "completed" for r in rows.values()), rows
    assert rows["kill"]["restarts"] == 1 and rows["kill"]["delta"] is not None
    assert set(rows["kill"]["neighbour_steps_down"]) == {"l1", "l3", "head"}
    assert rows["stray"]["rejected"] > 0 and rows["clean"]["rejected"] == 0
    assert all(r["sockets_left"] == 0 for r in rows.values())
