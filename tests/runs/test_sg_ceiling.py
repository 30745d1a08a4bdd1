"""A recurrent run keeps its checkpoint, and ``dnilab probe`` reads it back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from runs.cli import main
from runs.sg_ceiling import probe_run

from .conftest import tiny_charlm


def test_a_recurrent_run_keeps_its_checkpoint_and_the_probe_reads_it(tmp_path: Path) -> None:
    run_dir = tiny_charlm(tmp_path / "run")
    state = torch.load(run_dir / "checkpoints" / "recurrent.pt", weights_only=True)
    assert state["step"] == 40 and state["sg"] is not None and state["recipe"]["agent"]["hidden"] == 8
    summary = json.loads((run_dir / "summary.json").read_text())
    assert state["best_valid_bpc"] == pytest.approx(summary["eval"]["valid_bpc"], rel=1e-6)  # records round floats

    result = probe_run(run_dir, boundaries=10, horizon=2, gamma=0.5, mlp_epochs=1, progress=False)
    assert (result["sg"], result["window"], result["boundaries"]) == ("dni", 8, 10)
    for fit in ("constant", "linear", "mlp", "online"):
        assert -1.0 <= result["discounted"][fit]["test"]["cosine"] <= 1.0, fit
    assert result["discounted"]["rows"] == {"fit": 12, "choose": 4, "test": 4}  # 6/2/2 boundaries x 2 streams

    out = CliRunner().invoke(main, ["probe", str(run_dir), "--boundaries", "5", "--horizon", "1", "--mlp-epochs",
                                    "0", "--json", str(tmp_path / "probe.json")])
    assert out.exit_code == 0, out.output
    assert "| run | target |" in out.output and json.loads((tmp_path / "probe.json").read_text())[0]["gamma"] == 0.5


def test_probing_a_folder_without_a_checkpoint_says_so(tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["probe", str(tmp_path)])
    assert out.exit_code == 2 and "no recurrent checkpoint" in out.output
