"""``dnilab bpc``: a finished char-LM run scored per text of a split agrees with the run's own evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from environments.charlm import CharLM
from runs.bpc_by_text import bpc_by_text, target_positions
from runs.cli import main

from .conftest import CHARLM_TEXT, tiny_charlm


def test_target_positions_point_at_the_characters_each_stream_predicts() -> None:
    env = CharLM(split="valid", batch_size=3, text="abcdefghijklmnopqrstuvwxyz" * 20)
    ids = env.streams.reshape(-1)  # the split's characters in text order (the tail that fits no stream is cut)
    np.testing.assert_array_equal(ids[target_positions(*env.streams.shape)], env.streams[:, 1:])


def test_a_run_scored_per_text_matches_its_best_validation_bpc(tmp_path: Path) -> None:
    run_dir = tiny_charlm(tmp_path / "run")
    result = bpc_by_text(run_dir, "valid")
    best = json.loads((run_dir / "summary.json").read_text())["eval"]["valid_bpc"]
    assert result["bpc"] == pytest.approx(best, rel=1e-5)  # the checkpoint holds the best-validation weights
    assert [t["name"] for t in result["texts"]] == ["text"]  # an injected text has no documents
    valid_chars = len(CHARLM_TEXT) * 5 // 100
    assert result["chars"] == result["texts"][0]["chars"] == valid_chars // 2 * 2 - 2  # 2 streams, all but the first
    kinds = {c["name"]: c for c in result["characters"]}
    assert set(kinds) == {"letters, lower case", "spaces"}  # the text has no capitals, newlines or punctuation
    assert sum(c["chars"] for c in kinds.values()) == result["chars"]
    weighted = sum(c["bpc"] * c["chars"] for c in kinds.values()) / result["chars"]
    assert weighted == pytest.approx(result["bpc"], rel=1e-6)

    out = CliRunner().invoke(main, ["bpc", str(run_dir), str(run_dir), "--split", "test",
                                    "--json", str(tmp_path / "bpc.json")])
    assert out.exit_code == 0, out.output
    assert "| text / characters predicted | chars |" in out.output and "**all of test**" in out.output
    assert json.loads((tmp_path / "bpc.json").read_text())[1]["split"] == "test"


def test_scoring_a_folder_without_a_checkpoint_says_so(tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["bpc", str(tmp_path)])
    assert out.exit_code == 2 and "no recurrent checkpoint" in out.output


def test_runs_scored_on_different_texts_are_not_put_in_one_table() -> None:
    from runs.bpc_by_text import table
    from runs.recipe import RecipeError

    a = {"run": "a", "split": "valid", "chars": 10, "bpc": 2.0, "texts": [{"name": "troilus", "chars": 10, "bpc": 2.0}],
         "characters": []}
    b = {**a, "run": "b", "texts": [{"name": "ptb", "chars": 10, "bpc": 2.0}]}
    assert "| troilus | 10 | 2.0000 | 2.0000 |" in table([a, a])
    with pytest.raises(RecipeError, match="different texts"):
        table([a, b])
