"""Bad recipes are rejected before anything starts, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from runs import RecipeError, prepare
from runs.recipe import parse_override

RECIPE = "runs/mnist-fcn4-cdni.toml"
TINY_ENV = ["env.kwargs.limit=512"]


def reject(*overrides: str, recipe: str = RECIPE) -> str:
    with pytest.raises(RecipeError) as err:
        prepare(recipe, [*TINY_ENV, *overrides])
    return str(err.value)


def test_every_shipped_recipe_is_valid() -> None:
    root = Path(__file__).resolve().parents[2] / "runs"
    recipes = sorted(root.glob("*.toml"))
    assert len(recipes) >= 30
    for path in recipes:
        recipe, _ = prepare(path, TINY_ENV if "mnist" in path.name else [])
        assert recipe["run"]["name"] == path.stem


def test_overrides_are_toml_values() -> None:
    assert parse_override("run.steps=20") == (["run", "steps"], 20)
    assert parse_override("defaults.edge.backward=dni") == (["defaults", "edge", "backward"], "dni")
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    with pytest.raises(RecipeError, match="dotted.key=value"):
        parse_override("run.steps")


@pytest.mark.parametrize(("override", "names"), [
    ("run.stepz=3", "run.stepz"),
    ("run.steps=0", "run.steps"),
    ("run.steps=many", "run.steps"),
    ("run.launcher=moon", "run.launcher"),
    ("run.capacity=-1", "run.capacity"),
    ("run.capacity=8", "run.capacity"),  # too small for 4 forward-locked agents with window 4
    ("defaults.edge.backward=sideways", "backward"),
    ("defaults.edge.forward=psychic", "forward"),
    ("defaults.edge.synthesizer={hidden=[8], lrr=1}", "defaults.edge.synthesizer.lrr"),
    ("defaults.agent.update_prob=0", "update_prob"),
    ("defaults.agent.slowdown=0.5", "slowdown"),
    ("defaults.agent.optimizer={name=\"adamz\"}", "optimizer.name"),
    ("defaults.agent.optimizer={decay=\"cos\"}", "optimizer.decay"),
    ("model.kind=transformer", "model.kind"),
    ("model.depth=1", "model.depth"),
    ("overrides.l9.slowdown=2", "overrides.l9"),
    ('run.device="gpu"', "run.device"),
    ('run.device="cuda:99"', "run.device"),  # no such CUDA device here, whatever this machine has
    ('overrides.l2.device="cuda:99"', "agents.l2.device"),
    ("env.id=\"nowhere.module:Env\"", "env"),
    ("env.kwargs.batch_size=-1", "env"),
    ("bogus.key=1", "bogus"),
])
def test_bad_key_or_value_is_named(override: str, names: str) -> None:
    assert names in reject(override)


def test_explicit_graph_errors_name_the_agent(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('''
[run]
steps = 10
[env]
id = "dnilab/MNIST-v0"
kwargs = { limit = 512 }
[[agents]]
name = "a"
module = { type = "linear", in = 784, out = 64 }
[[agents]]
name = "b"
module = { type = "head", in = 32, classes = 10 }
[[edges]]
from = "env"
to = "a"
[[edges]]
from = "a"
to = "b"
backward = "dni"
''')
    with pytest.raises(RecipeError, match=r"agents\.b\.module"):
        prepare(recipe, [])
    recipe.write_text(recipe.read_text().replace('to = "b"', 'to = "c"'))
    with pytest.raises(RecipeError, match="unknown agent 'c'"):
        prepare(recipe, [])


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="no such file"):
        prepare(tmp_path / "absent.toml", [])
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nsteps = ")
    with pytest.raises(RecipeError, match="not valid TOML"):
        prepare(bad, [])


def test_recurrent_recipe_errors_are_named() -> None:
    with pytest.raises(RecipeError, match="agent.window"):
        prepare("runs/copy-t3-dni.toml", ["agent.window=0"])
    with pytest.raises(RecipeError, match="^run.device"):
        prepare("runs/copy-t3-dni.toml", ['run.device="cuda:99"'])
