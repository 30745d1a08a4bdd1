"""Recipe models: a recipe given as a dict is checked against its run.kind's model, and its defaults filled."""

from __future__ import annotations

import pytest

from runs import RecipeError
from runs.config import FeedForwardRecipe, check, resolved
from runs.execute import SYSTEMS, plan_recipe

FCN = {"run": {"steps": 10}, "env": {"id": "dnilab/MNIST-v0", "kwargs": {"limit": 512}},
       "model": {"depth": 3, "hidden": 16}, "defaults": {"edge": {"backward": "dni"}}}


def test_a_dict_recipe_is_checked_and_filled() -> None:
    recipe, graph = plan_recipe(FCN, default_name="tiny")
    assert recipe["run"]["name"] == "tiny" and recipe["run"]["window"] == 4 and recipe["run"]["capacity"] > 0
    assert recipe["env"]["eval"] == {"split": "test"}
    assert recipe["model"] == {"kind": "fcn", "depth": 3, "hidden": 16, "classes": 10}
    assert recipe["defaults"]["edge"]["synthesizer"] == {"hidden": [], "lr": 1e-4, "scale": 1.0, "updates": 1}
    assert [e.backward for e in graph.edges] == ["backprop", "dni", "dni"]  # the env's edge takes no defaults
    again, _ = plan_recipe(recipe)  # the resolved recipe (recipe.toml) is itself a valid recipe
    assert again == recipe


def test_cnn_depth_is_derived() -> None:
    model = check(FeedForwardRecipe, {**FCN, "model": {"kind": "cnn", "channels": [4]}}).model
    assert model.depth == 2 and model.hidden is None
    with pytest.raises(RecipeError, match=r"^model\.depth: a cnn's depth is len\(channels\) \+ 1 = 2"):
        check(FeedForwardRecipe, {**FCN, "model": {"kind": "cnn", "channels": [4], "depth": 4}})


@pytest.mark.parametrize(("patch", "message"), [
    ({"run": {"kind": "quantum"}},
     "run.kind: must be one of 'feedforward', 'recurrent', 'multiscale', 'rl', 'marl', got 'quantum'"),
    ({"run": {"steps": "many"}}, "run.steps: must be an int, got 'many'"),
    ({"run": {"pace": "slow"}}, "run.pace: must be 'fastest' or 'all', got 'slow'"),
    ({"levels": {}}, "levels: unknown key (known: agents, defaults, edges, env, model, overrides, paper, run)"),
    ({"agents": [{"name": "a", "module": {"type": "head", "in": 784, "classes": 10}}]}, "model: give either"),
    ({"env": {"kwargs": {}}}, "env.id: missing"),
    ({"run": 3}, "run: must be a table, got 3"),
])
def test_bad_recipes_name_the_key(patch: dict, message: str) -> None:
    with pytest.raises(RecipeError) as err:
        plan_recipe({**FCN, **patch})
    assert str(err.value).startswith(message)


def test_every_kind_has_a_model() -> None:
    assert set(SYSTEMS) == {"feedforward", "recurrent", "multiscale", "rl", "marl"}
    assert resolved(check(SYSTEMS["recurrent"].model, {"run": {"kind": "recurrent"}, "env": {"id": "dnilab/Copy-v0"}})
                    )["curriculum"]["threshold"] == 0.15
