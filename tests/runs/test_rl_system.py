"""RL recipes: typed checks before anything starts, and short runs of the whole system (inproc: one thread)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from runs import RecipeError, execute, prepare
from runs.rl_system import compare_returns

ROOT = Path(__file__).resolve().parents[2]
CARTPOLE = ROOT / "runs" / "cartpole-ppo-backprop.toml"
CORRIDOR = ['env.id="tests.agents.rl_envs:Corridor"', "env.kwargs={length=4}", "env.num_envs=2",
            "ppo.num_steps=16", "run.steps=256", "env.eval_episodes=3", 'run.launcher="inproc"']


def reject(*overrides: str) -> str:
    with pytest.raises(RecipeError) as err:
        prepare(CARTPOLE, list(overrides))
    return str(err.value)


@pytest.mark.parametrize(("override", "named"), [
    ("defaults.edge.backward=sideways",
     "defaults.edge.backward: must be 'backprop', 'dni', 'cdni' or 'none', got 'sideways'"),
    ("ppo.gamma=1.5", "ppo.gamma: must be <= 1, got 1.5"),
    ("ppo.lr=fast", "ppo.lr: must be a number"),
    ("ppo.towerz=2", "ppo.towerz: unknown key"),
    ("env.num_envs=0", "env.num_envs: must be >= 1"),
    ('env.id="NoSuchEnv-v9"', "env.id: cannot serve 'NoSuchEnv-v9'"),
    ('env.id="tests.agents.rl_envs:Nope"', "env.id: cannot serve 'tests.agents.rl_envs:Nope'"),
    ("run.steps=100", "run.steps: at least one rollout (ppo.num_steps x env.num_envs = 512 env steps), got 100"),
    ("ppo.num_minibatches=5", "ppo.num_minibatches: must divide a rollout's 512 samples, got 5"),
    ("defaults.edge.backward=cdni", "edges[1].synthesizer: a cdni edge needs a context"),
    ('defaults.edge.synthesizer={context="action"}', "only a cdni edge reads a context"),
    ("run.launcher=slurm", "run.launcher: must be 'local', 'inproc' or 'ray'"),
])
def test_bad_recipes_name_the_key(override: str, named: str) -> None:
    assert named in reject(override)


def test_bad_chains_name_the_key(tmp_path: Path) -> None:
    base = CARTPOLE.read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(base.replace('to = "head"', 'to = "hed"'))
    with pytest.raises(RecipeError, match=r"edges\[1\].to: unknown agent 'hed'"):
        prepare(bad, [])
    bad.write_text(base.replace('kind = "actor_critic"', 'kind = "encoder"'))
    with pytest.raises(RecipeError, match=r"agents.head.kind: the chain's last agent must be an actor_critic"):
        prepare(bad, [])


def test_the_resolved_recipe_has_every_default() -> None:
    recipe, plan = prepare(ROOT / "runs" / "cartpole-ppo-dni.toml", [])
    assert recipe["run"]["name"] == "cartpole-ppo-dni" and recipe["ppo"]["clip_coef"] == 0.2
    assert recipe["edges"][1]["backward"] == "dni" and recipe["edges"][1]["from"] == "encoder"
    assert plan.rollouts == 500_000 // 512 and [a.name for a in plan.chain] == ["encoder", "head"]
    assert plan.facts == {"obs_dim": 4, "continuous": False, "action_dim": 2}


def run(tmp_path: Path, recipe: Path, overrides: list[str]) -> dict:
    torch.set_num_threads(1)
    prepared, plan = prepare(recipe, overrides)
    run_dir, summary = execute(prepared, plan, out=tmp_path / "run", progress=False)
    assert summary["status"] == "completed", summary.get("error")
    return summary


def test_a_short_cartpole_run_learns(tmp_path: Path) -> None:
    summary = run(tmp_path, CARTPOLE, ['run.launcher="inproc"', "run.steps=8192"])
    ev = summary["eval"]
    assert ev["episodes"] == 20 and ev["env_steps"] == 8192 and "steps_to_threshold" in ev
    assert ev["mean_return"] > 60  # an untrained deterministic policy holds the pole for about 10 steps
    assert (tmp_path / "run" / "plots" / "returns.png").is_file()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics" / "env.jsonl").read_text().splitlines()]
    assert any("returns" in r for r in rows)
    assert {p.name for p in (tmp_path / "run" / "checkpoints").iterdir()} == {"encoder.pt", "head.pt"}
    assert compare_returns([tmp_path / "run"], tmp_path / "cmp.png").is_file()


@pytest.mark.parametrize("mode", ["backprop", "dni", "cdni", "none"])
def test_a_plugged_in_env_runs_in_every_mode(tmp_path: Path, mode: str) -> None:
    extra = [f"defaults.edge.backward={mode}"]
    if mode == "cdni":
        extra.append('defaults.edge.synthesizer={context="action_return", lr=1e-3}')
    summary = run(tmp_path, CARTPOLE, CORRIDOR + extra)
    assert summary["eval"]["episodes"] == 3 and summary["eval"]["env_steps"] == 256
    encoder = summary["agents"]["encoder"]
    assert encoder["updates"] == (0 if mode == "none" else 8 * 16)  # 8 rollouts x 4 epochs x 4 minibatches
    if mode in ("dni", "cdni"):
        assert encoder["sg_trained"] == 8 * 16 and encoder["sg_unmatched"] == 0


def test_a_box_action_env_runs(tmp_path: Path) -> None:
    summary = run(tmp_path, CARTPOLE, CORRIDOR[1:] + ['env.id="tests.agents.rl_envs:Reach"', "env.kwargs={}"])
    assert summary["eval"]["mean_length"] == 4.0


@pytest.mark.parametrize("mode", ["backprop", "dni"])
def test_a_chain_of_two_encoders_runs(tmp_path: Path, mode: str) -> None:
    text = CARTPOLE.read_text().replace('[[edges]]\nfrom = "encoder"\nto = "head"', (
        '[[agents]]\nname = "middle"\nkind = "encoder"\nhidden = [32]\n\n'
        '[[edges]]\nfrom = "encoder"\nto = "middle"\n\n[[edges]]\nfrom = "middle"\nto = "head"'))
    recipe = tmp_path / "chain.toml"
    recipe.write_text(text)
    summary = run(tmp_path, recipe, CORRIDOR + [f"defaults.edge.backward={mode}"])
    assert summary["agents"]["encoder"]["updates"] == summary["agents"]["middle"]["updates"] == 8 * 16
