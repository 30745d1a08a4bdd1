"""``runs.run``: a recipe run from Python, by file, shipped name or dict, with list or dict overrides."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import torch

import runs
from runs import RecipeError
from runs.api import load_recipe, set_keys
from runs.recipe import apply_overrides

from .conftest import ROOT, TINY

TINY_DICT = {"run.steps": 40, "run.eval_every": 20, "run.metrics_every": 10, "env.kwargs.limit": 2048,
             "env.kwargs.batch_size": 64, "env.eval": {"split": "test", "limit": 512}, "model.hidden": 32,
             "defaults.agent.optimizer": {"name": "adam", "lr": 2e-3}}


def test_a_shipped_name_runs_and_returns_its_summary(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    summary = runs.run("mnist-fcn4-dni", [*TINY, "run.steps=20", "run.eval_every=0"], out=tmp_path / "a",
                       launcher="inproc")
    assert summary["status"] == "completed" and summary["run_dir"] == str(tmp_path / "a")
    assert 0 <= summary["eval"]["test_error"] <= 100
    assert json.loads((tmp_path / "a" / "summary.json").read_text()) == {
        k: v for k, v in summary.items() if k != "run_dir"}
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["recipe"] == str(ROOT / "runs" / "mnist-fcn4-dni.toml") and meta["name"] == "mnist-fcn4-dni"


def test_a_dict_with_dict_overrides_is_the_same_recipe() -> None:
    by_name, path = load_recipe("mnist-fcn4-dni.toml")
    recipe = tomllib.loads(Path(path).read_text())
    by_dict, no_path = load_recipe(recipe)
    assert no_path is None and by_dict == recipe and by_dict is not recipe
    assert set_keys(by_dict, TINY_DICT) == apply_overrides(by_name, TINY)
    assert "limit" not in recipe["env"]["kwargs"]  # the caller's dict is left as it was


def test_a_path_works_and_a_bad_key_stops_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="backward"):
        runs.run(ROOT / "runs" / "mnist-fcn4-cdni.toml", {"defaults.edge.backward": "sideways"}, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_unknown_recipes_and_bad_overrides_are_named() -> None:
    with pytest.raises(RecipeError, match="no-such-recipe"):
        runs.run("no-such-recipe")
    with pytest.raises(RecipeError, match=r"override 'run\.steps\.x': 'steps' is not a table"):
        runs.run("mnist-fcn4-dni", {"run.steps.x": 1})
    with pytest.raises(RecipeError, match="overrides"):
        runs.run("mnist-fcn4-dni", "run.steps=5")


def test_a_folder_holding_a_run_is_not_reused(tmp_path: Path) -> None:
    (tmp_path / "meta.json").write_text("{}")
    with pytest.raises(FileExistsError, match="already holds a run"):
        runs.run("mnist-fcn4-dni", TINY, out=tmp_path)
