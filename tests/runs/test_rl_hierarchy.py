"""The masked-CartPole hierarchy recipes: typed checks before anything starts, and a short run in each mode."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from runs import RecipeError, execute, prepare

ROOT = Path(__file__).resolve().parents[2]
RECIPES = {mode: ROOT / "runs" / f"cartpole-masked-multiscale-{mode}.toml" for mode in ("backprop", "dni")}
TINY = ["env.num_envs=4", "ppo.num_steps=32", "ppo.num_minibatches=2", "run.steps=512", "env.eval_episodes=3",
        'run.launcher="inproc"']


def test_the_recipes_resolve_to_a_slow_agent_feeding_the_controller() -> None:
    recipe, plan = prepare(RECIPES["dni"], [])
    assert [a.kind for a in plan.chain] == ["recurrent", "actor_critic"] and plan.chain[0].period == 4
    assert plan.facts["obs_dim"] == 2 and recipe["edges"][1]["backward"] == "dni"
    assert prepare(RECIPES["backprop"], [])[0]["edges"][1]["backward"] == "backprop"


def rejected(tmp_path: Path, text: str, overrides: list[str] | None = None) -> str:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(RecipeError) as err:
        prepare(bad, overrides or [])
    return str(err.value)


@pytest.mark.parametrize(("old", "new", "named"), [
    ("num_minibatches = 4", "num_minibatches = 16", "ppo.num_minibatches: must divide env.num_envs (8) with"),
    ("hidden = [64]         #", "hidden = [8, 8] #", "agents[0]: hidden: a recurrent agent has one width"),
    ("period = 4", "period = 0", "agents[0].period: must be >= 1"),
    ("hidden = [64, 64]", "hidden = [64, 64]\nperiod = 2", "agents[1]: period: only a recurrent agent ticks slower"),
])
def test_bad_hierarchies_name_the_key(tmp_path: Path, old: str, new: str, named: str) -> None:
    text = RECIPES["dni"].read_text()
    assert old in text
    assert named in rejected(tmp_path, text.replace(old, new))


def test_a_recurrent_agent_must_read_the_environment(tmp_path: Path) -> None:
    text = RECIPES["dni"].read_text().replace('[[edges]]\nfrom = "slow"\nto = "controller"', (
        '[[agents]]\nname = "enc"\nkind = "encoder"\n\n'
        '[[edges]]\nfrom = "slow"\nto = "enc"\n\n[[edges]]\nfrom = "enc"\nto = "controller"'))
    text = text.replace('from = "env"\nto = "slow"', 'from = "env"\nto = "enc"').replace(
        'from = "slow"\nto = "enc"', 'from = "enc"\nto = "slow"').replace(
        'from = "enc"\nto = "controller"', 'from = "slow"\nto = "controller"')
    assert "agents.slow.kind: a recurrent agent reads the environment" in rejected(tmp_path, text)


@pytest.mark.parametrize("mode", ["backprop", "dni"])
def test_a_short_hierarchy_run_completes(tmp_path: Path, mode: str) -> None:
    torch.set_num_threads(1)
    prepared, plan = prepare(RECIPES[mode], TINY)
    _, summary = execute(prepared, plan, out=tmp_path / "run", progress=False)
    assert summary["status"] == "completed", summary.get("error")
    assert summary["eval"]["episodes"] == 3 and summary["eval"]["env_steps"] == 512
    slow = summary["agents"]["slow"]
    assert slow["updates"] == 4 * 4 * 2  # 4 rollouts x 4 epochs x 2 groups of env copies
    if mode == "dni":
        assert slow["sg_trained"] == 4 * 4 * 2 and slow["sg_unmatched"] == 0
    assert {p.name for p in (tmp_path / "run" / "checkpoints").iterdir()} == {"slow.pt", "controller.pt"}


def test_bench_rl_says_its_plain_loop_has_no_recurrent_agent() -> None:
    from runs.bench.rl import bench_rl

    with pytest.raises(RecipeError, match="the plain loop has no recurrent agent"):
        bench_rl([str(RECIPES["dni"])], steps=512)
