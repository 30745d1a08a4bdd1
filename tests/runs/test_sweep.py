"""Sweeps: a sweep file expands into cells whose overrides are TOML values the recipe loader reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from runs.recipe import RecipeError, parse_override
from runs.sweep import sweep_cells

RUNS = Path(__file__).resolve().parents[2] / "runs"


def test_set_and_grid_values_read_back_as_written(tmp_path: Path) -> None:
    sweep = tmp_path / "s.toml"
    fixed = ('{ "levels.fast.optimizer" = { name = "adam", lr = 3e-4, decay = "cosine" }, '
             '"run.name" = \'say "hi"\', "defaults.edge.synthesizer.hidden" = [64, 64] }')
    recipe = RUNS / "multiscale-dni.toml"
    sweep.write_text(f'[sweep]\nrecipes = ["{recipe}"]\nset = {fixed}\ngrid = {{ "run.seed" = [0, 1] }}\n')
    _, cells = sweep_cells(sweep)
    assert [name for name, _, _ in cells] == ["multiscale-dni-seed0", "multiscale-dni-seed1"]
    values = [parse_override(o) for o in cells[1][2]]
    assert values == [(["levels", "fast", "optimizer"], {"name": "adam", "lr": 3e-4, "decay": "cosine"}),
                      (["run", "name"], 'say "hi"'), (["defaults", "edge", "synthesizer", "hidden"], [64, 64]),
                      (["run", "seed"], 1)]


def test_unknown_sweep_key_is_named(tmp_path: Path) -> None:
    sweep = tmp_path / "s.toml"
    sweep.write_text('[sweep]\nrecipes = []\ngird = {}\n')
    with pytest.raises(RecipeError, match="^sweep.gird"):
        sweep_cells(sweep)


def test_cell_names_from_tables_and_arrays_are_safe_file_names(tmp_path: Path) -> None:
    sweep = tmp_path / "s.toml"
    recipe = RUNS / "multiscale-dni.toml"
    sweep.write_text(f'[sweep]\nrecipes = ["{recipe}"]\n'
                     'grid = { "defaults.edge.synthesizer.hidden" = [[64, 64]], '
                     '"levels.fast.optimizer" = [{ name = "adam", lr = 3e-4 }], '
                     '"env.kwargs.target" = ["count_odd"] }\n')
    _, cells = sweep_cells(sweep)
    assert [name for name, _, _ in cells] == ["multiscale-dni-hidden64_64-optimizernameadam_lr0.0003-targetcount_odd"]
