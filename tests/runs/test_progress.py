"""The run progress display: without a terminal it prints a line every ~10 % instead of redrawing a bar."""

from __future__ import annotations

from runs.progress import RunProgress


def test_plain_lines_every_tenth_without_a_terminal(capsys):
    with RunProgress(100, "probe", unit="boundary", status="") as bar:
        for _ in range(100):
            bar.advance()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("boundary ")]
    assert lines[0] == "boundary 1/100"
    assert lines[-1] == "boundary 100/100"
    assert len(lines) == 11  # deciles 0..10


def test_run_records_drive_the_count(capsys):
    with RunProgress(50, "run") as bar:
        bar("recurrent", "metrics", 25, {"steps": 25, "batches_per_s": 12.0})
        bar("recurrent", "eval", 25, {"valid_bpc": 2.5})
    err = capsys.readouterr().err
    assert "step 25/50 12 batch/s" in err
    assert "eval at step 25: valid_bpc=2.5" in err


def test_disabled_prints_nothing(capsys):
    with RunProgress(10, "quiet", enabled=False) as bar:
        bar.advance(10)
    assert capsys.readouterr().err == ""
