"""The command line, in this process: shipped recipes by name, bad recipes named, the figure commands."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from runs.cli import main


def test_run_takes_a_shipped_recipe_by_name_and_names_a_bad_key() -> None:
    result = CliRunner().invoke(main, ["run", "mnist-fcn4-cdni", "--set", "run.stepz=3"])
    assert result.exit_code == 2 and "bad recipe: run.stepz: unknown key (known: address," in result.output
    result = CliRunner().invoke(main, ["run", "no-such-recipe"])
    assert result.exit_code == 2 and "no such file, nor a shipped recipe" in result.output


def test_figure_commands_parse_their_arguments(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["plot-recurrent", str(tmp_path), str(tmp_path / "img")])
    assert result.exit_code == 0 and result.output == ""  # no run folders: no figures
    run = tmp_path / "multiscale-dni"
    (run / "metrics").mkdir(parents=True)
    (run / "recipe.toml").write_text('[run]\nkind = "multiscale"\n[defaults.edge]\nbackward = "dni"\n')
    rows = [{"test_accuracy": a, "train_s": t, "at": t} for a, t in ((50.0, 1.0), (60.0, 2.0))]
    (run / "metrics" / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(main, ["multiscale", "plot", str(tmp_path / "f.png"), "--ymin", "40", str(run)])
    assert result.exit_code == 0 and (tmp_path / "f.png").is_file()
    result = CliRunner().invoke(main, ["multiscale", "compare", str(run)])
    assert result.exit_code == 0 and json.loads(result.output)["final_accuracy"] == 60.0
    (run / "metrics" / "mid.jsonl").write_text("".join(json.dumps({"step": s, "sg/sg_cosine": 0.5}) + "\n"
                                                       for s in range(8)))
    result = CliRunner().invoke(main, ["multiscale", "quarters", str(run), "mid", "sg/sg_cosine"])
    assert result.exit_code == 0 and json.loads(result.output)["quarters"] == [0.5] * 4
