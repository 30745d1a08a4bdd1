"""MNIST quadrants: four sensor agents, a fusion agent (fan-in of the four), a head; the recipes build, bad
ones are rejected naming the key, and a tiny run learns above chance."""

from __future__ import annotations

from pathlib import Path

import pytest

from runs import RecipeError, execute, prepare
from runs.compose import evaluate_composed
from tests.runs.conftest import TINY

MODES = ("backprop", "cdni", "dni", "unlock-cdni")


@pytest.mark.parametrize("mode", MODES)
def test_the_recipes_expand_into_a_fan_in_graph(mode: str) -> None:
    _, graph = prepare(f"runs/mnist-quadrants-{mode}.toml", TINY)
    assert [e.name for e in graph.in_edges("fusion")] == ["q1->fusion", "q2->fusion", "q3->fusion", "q4->fusion"]
    assert [graph.env_edge(f"q{i}").part for i in range(1, 5)] == [0, 1, 2, 3]
    assert graph.agent("q1").in_shape == (196,) and graph.agent("fusion").in_shape == (4 * 64,)
    assert graph.order()[-2:] == ["fusion", "head"]


@pytest.mark.parametrize("extra, message", [
    (["env.kwargs.quadrants=false"], "model.kind: 'quadrants' needs an input cut into parts"),
    (["model.depth=4"], "model.depth: a quadrants model is sensor, fusion, head"),
    (['model.kind="fcn"'], "model.sensor: only with kind"),
    (['overrides.fusion={merge="mean"}'], "agents.fusion.merge: must be 'concat' or 'sum'"),
    (['overrides.fusion={merge="sum"}'], "agents.fusion.module: does not accept input of shape [64]"),
])
def test_bad_quadrant_recipes_name_the_key(extra: list[str], message: str) -> None:
    with pytest.raises(RecipeError) as err:
        prepare("runs/mnist-quadrants-backprop.toml", [*TINY, *extra])
    assert message in str(err.value)


def test_a_tiny_quadrants_run_learns_above_chance_and_composes(tmp_path: Path) -> None:
    """cdni on every edge; the checkpoints composed as one graph give the run's own final evaluation."""
    recipe, plan = prepare("runs/mnist-quadrants-cdni.toml", [*TINY, "run.launcher=inproc", "run.eval_every=0"])
    run_dir, summary = execute(recipe, plan, out=tmp_path / "run", progress=False)
    assert summary["status"] == "completed"
    assert summary["eval"]["test_error"] < 60.0  # chance: 90 %
    composed = evaluate_composed(run_dir)
    assert composed["test_error"] == summary["eval"]["test_error"]
    assert abs(composed["test_loss"] - summary["eval"]["test_loss"]) < 1e-4
