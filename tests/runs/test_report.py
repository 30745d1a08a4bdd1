"""``runs.report``: collecting run folders, the table beside the paper's numbers, the pivot, the plot."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from runs.report import PAPER, collect_runs, markdown_table, paper_number, plot_error_vs_time


def _fake_run(folder: Path, recipe: dict[str, Any], summary: dict[str, Any], evals: list[dict]) -> Path:
    (folder / "metrics").mkdir(parents=True)
    (folder / "recipe.toml").write_text(tomli_w.dumps(recipe))
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "metrics" / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))
    return folder


def _mnist(folder: Path, name: str, depth: int, backward: str, error: float, forward: str = "real") -> Path:
    recipe = {"run": {"name": name, "kind": "feedforward", "steps": 600},
              "env": {"id": "dnilab/MNIST-v0", "kwargs": {"batch_size": 256}},
              "model": {"kind": "fcn", "depth": depth, "hidden": 256},
              "defaults": {"edge": {"backward": backward, "forward": forward}}}
    summary = {"status": "completed", "name": name, "wall_s": 42.5, "steps": 600,
               "eval": {"test_error": error, "test_loss": 0.1, "examples": 10000}}
    evals = [{"agent": "l4", "step": s, "time": 10.0 * (i + 1), "round": i, "at": s, "test_error": e}
             for i, (s, e) in enumerate([(200, 9.0), (400, 5.0), (600, error)])]
    return _fake_run(folder, recipe, summary, evals)


def _copy(folder: Path) -> Path:
    recipe = {"run": {"name": "copy-dni", "kind": "recurrent", "steps": 1000},
              "env": {"id": "dnilab/Copy-v0", "kwargs": {"bits": 8}},
              "agent": {"window": 3, "sg": "dni", "aux": False}}
    summary = {"status": "failed", "name": "copy-dni", "wall_s": 300.0, "steps": 1000,
               "eval": {"max_length": 12, "final_length": 13, "episodes": 900}}
    evals = [{"agent": "core", "step": 500, "time": 150.0, "max_length": 6},
             {"agent": "core", "step": 1000, "time": 300.0, "max_length": 12}]
    return _fake_run(folder, recipe, summary, evals)


def _grid(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    _mnist(sweep / "a" / "mnist-fcn3-cdni", "mnist-fcn3-cdni", 3, "cdni", 2.5)
    _mnist(sweep / "b" / "mnist-fcn4-cdni", "mnist-fcn4-cdni", 4, "cdni", 2.1)
    _mnist(sweep / "mnist-fcn4-bprop", "mnist-fcn4-bprop", 4, "backprop", 1.9)
    _copy(sweep / "copy-dni")
    (sweep / "not-a-run").mkdir()
    return sweep


def test_collect_derives_task_mode_depth(tmp_path: Path) -> None:
    sweep = _grid(tmp_path)
    runs = collect_runs([sweep, sweep / "copy-dni"])  # nested folders; the same run twice counts once
    assert len(runs) == 4
    by_name = {r["name"]: r for r in runs}
    fcn3 = by_name["mnist-fcn3-cdni"]
    assert (fcn3["task"], fcn3["depth"], fcn3["mode"], fcn3["steps"]) == ("mnist fcn", 3, "cdni", 600)
    assert fcn3["status"] == "completed" and fcn3["wall_s"] == 42.5 and fcn3["eval"]["test_error"] == 2.5
    assert by_name["mnist-fcn4-bprop"]["mode"] == "bprop"
    copy = by_name["copy-dni"]
    assert (copy["kind"], copy["task"], copy["depth"], copy["mode"]) == ("recurrent", "copy", 3, "dni")


def test_mode_names_synthetic_input_and_aux(tmp_path: Path) -> None:
    _mnist(tmp_path / "si", "si", 4, "cdni", 2.0, forward="synthetic")
    run = collect_runs([tmp_path / "si"])[0]
    assert run["mode"] == "cdni + synthetic input"
    assert run["paper"] is None  # the paper's table has no such cell


def test_cnn_depth_counts_conv_agents_and_the_classifier(tmp_path: Path) -> None:
    folder = _mnist(tmp_path / "cnn", "mnist-cnn3-cdni", 3, "cdni", 1.1)
    recipe = tomllib.loads((folder / "recipe.toml").read_text())
    recipe["model"] = {"kind": "cnn", "channels": [32, 64]}  # as runs/mnist-cnn3-*.toml: no depth key
    (folder / "recipe.toml").write_text(tomli_w.dumps(recipe))
    run = collect_runs([folder])[0]
    assert (run["task"], run["depth"], run["paper"].value) == ("mnist cnn", 3, 1.0)  # PAPER.md: cDNI, CNN, 3


def test_paper_lookup() -> None:
    cell = PAPER[("mnist", "fcn", 4, "cdni")]
    assert cell.metric == "test_error" and 0 < cell.value < 5 and cell.confirmed is False
    assert PAPER[("copy", 3, "dni")].metric == "max_length"
    assert PAPER[("ptb", 5, "bptt")].metric == "test_bpc"
    assert ("mnist", "fcn", 4, "no bprop") in PAPER and ("repeatcopy", 2, "dni + aux") in PAPER
    fake = {"kind": "feedforward", "dataset": "mnist", "net": "fcn", "depth": 6, "mode": "dni"}
    assert paper_number(fake) == PAPER[("mnist", "fcn", 6, "dni")]
    assert paper_number({**fake, "depth": 12}) is None


def test_markdown_table_rows_and_pivot(tmp_path: Path) -> None:
    runs = collect_runs([_grid(tmp_path)])
    text = markdown_table(runs)
    lines = text.splitlines()
    assert lines[0].startswith("| run | task | depth/T | mode | steps | wall-clock | status | ours | paper")
    rows = [ln for ln in lines[2:6]]
    # sorted by task, then depth, then mode (bprop before cdni)
    assert [r.split(" | ")[0].strip("| ") for r in rows] == [
        "copy-dni", "mnist-fcn3-cdni", "mnist-fcn4-bprop", "mnist-fcn4-cdni"]
    fcn4 = rows[3]
    paper = PAPER[("mnist", "fcn", 4, "cdni")]
    assert "test error 2.10 %" in fcn4 and f"{paper.value:g} (u)" in fcn4 and "42.5 s" in fcn4
    assert "max length 12" in rows[0] and "failed" in rows[0]
    assert "5.0 min" in rows[0]
    # the MNIST FCN runs differ by depth and mode: a pivot with rows = mode, columns = depth
    assert "mnist fcn: test error, ours (paper)" in text
    pivot = text.split("mnist fcn: test error, ours (paper)")[1]
    assert "| mode | depth 3 | depth 4 |" in pivot
    assert f"| cdni | 2.50 ({PAPER[('mnist', 'fcn', 3, 'cdni')].value:g} (u)) | 2.10 (" in pivot
    assert "| bprop | — (" in pivot  # a cell we did not run still shows the paper's number
    assert "(u) = the paper's number is unconfirmed" in text
    assert "copy: " not in text  # one run only: no pivot


def test_plot_written(tmp_path: Path) -> None:
    runs = collect_runs([_grid(tmp_path)])
    # a run whose eval rows hold another metric (valid BPC, char LM) is drawn too
    lm = {"run": {"name": "ptb-dni", "kind": "recurrent", "steps": 10},
          "env": {"id": "dnilab/CharLM-v0", "kwargs": {"corpus": "ptb"}}, "agent": {"window": 5, "sg": "dni"}}
    _fake_run(tmp_path / "ptb", lm, {"status": "completed", "name": "ptb-dni", "wall_s": 5.0,
                                     "eval": {"valid_bpc": 1.6, "test_bpc": 1.55}},
              [{"agent": "core", "step": 5, "time": 2.0, "valid_bpc": 1.8},
               {"agent": "core", "step": 10, "time": 4.0, "valid_bpc": 1.6}])
    ptb = collect_runs([tmp_path / "ptb"])
    assert ptb[0]["task"] == "ptb" and ptb[0]["paper"] == PAPER[("ptb", 5, "dni")]
    assert "valid / test BPC 1.600 / 1.550" in markdown_table(ptb)
    out = plot_error_vs_time(runs + ptb, tmp_path / "plots" / "error_vs_time.png")
    assert out.is_file() and out.stat().st_size > 1000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_multiscale_mode_reads_each_level_over_the_edge_defaults() -> None:
    from runs.report import describe

    recipe = {"run": {"kind": "multiscale"}, "env": {"id": "dnilab/DigitStream-v0"},
              "defaults": {"edge": {"backward": "dni"}},
              "levels": {"fast": {"period": 1}, "mid": {"period": 4}, "slow": {"backward": "backprop"}}}
    assert (describe(recipe)["mode"], describe(recipe)["depth"]) == ("bprop/dni", 3)
    del recipe["levels"]["slow"]["backward"]
    assert describe(recipe)["mode"] == "dni"
