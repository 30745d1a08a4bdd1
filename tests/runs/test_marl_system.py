"""Multi-agent recipes: typed checks before anything starts, and short speaker-listener runs of every mode
(inproc: one thread) that complete and write their records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from runs import RecipeError, execute, prepare

ROOT = Path(__file__).resolve().parents[2]
RECIPES = {m: ROOT / "runs" / f"speaker-listener-ppo-{m}.toml" for m in ("envchannel", "backprop", "dni", "none")}
TINY = ["env.num_envs=2", "ppo.num_steps=16", "run.steps=64", "env.eval_episodes=2", "run.eval_every=0",
        'run.launcher="inproc"', "env.window=2"]
MESSAGE = '[[edges]]             # the message\nfrom = "speaker"\nto = "listener"'


def reject(text: str, tmp_path: Path, *overrides: str) -> str:
    recipe = tmp_path / "bad.toml"
    recipe.write_text(text)
    with pytest.raises(RecipeError) as err:
        prepare(recipe, list(overrides))
    return str(err.value)


@pytest.mark.parametrize(("override", "named"), [
    ("env.num_envs=0", "env.num_envs: must be >= 1"),
    ('env.id="tests.agents.marl_envs:Nope"', "env.id: cannot serve 'tests.agents.marl_envs:Nope'"),
    ("run.steps=100", "run.steps: at least one rollout (ppo.num_steps x env.num_envs = 1024 env steps), got 100"),
    ("ppo.num_minibatches=3", "ppo.num_minibatches: must divide a rollout's 1024 samples, got 3"),
    ("ppo.towerz=2", "ppo.towerz: unknown key"),
])
def test_bad_settings_name_the_key(override: str, named: str, tmp_path: Path) -> None:
    assert named in reject(RECIPES["dni"].read_text(), tmp_path, override)


@pytest.mark.parametrize(("old", "new", "named"), [
    ('observes = "listener_0"', 'observes = "listener_9"', "edges[2].observes: unknown env agent 'listener_9'"),
    ('observes = "listener_0"', 'observes = "speaker_0"', "edges[2].observes: 'speaker_0' already has a policy"),
    ("drop = [8, 9, 10]", "drop = [8, 11]", "edges[2].drop: 'listener_0' has 11 observation values, cannot drop [11]"),
    ('backward = "dni"', 'backward = "cdni"', "edges[4].backward: must be 'backprop', 'dni' or 'none', got 'cdni'"),
    (MESSAGE, MESSAGE.replace('to = "listener"', 'to = "listener_head"'),
     "edges[4].to: a message goes to a policy's first encoder"),
    (MESSAGE, MESSAGE.replace('from = "speaker"', 'from = "speaker_head"'),
     "edges[4].from: a message comes from an encoder's output, 'speaker_head' is an actor_critic"),
    (MESSAGE, MESSAGE.replace("\nfrom", '\nobserves = "speaker_0"\nfrom'),
     "edges[4]: observes: only an edge from env carries observations"),
    ("message = true\n", "", "edges[4].from: 'speaker' already has a policy out-edge"),
    ('[[edges]]\nfrom = "env"\nto = "speaker"\nobserves = "speaker_0"\n', "",
     "edges: env agents ['speaker_0'] have no policy"),
    ('kind = "actor_critic"', 'kind = "encoder"',
     "agents.speaker_head.kind: the last agent of 'speaker_0''s policy must be an actor_critic"),
])
def test_bad_graphs_name_the_key(old: str, new: str, named: str, tmp_path: Path) -> None:
    text = RECIPES["dni"].read_text()
    assert old in text
    assert named in reject(text.replace(old, new, 1), tmp_path)


def test_messages_may_not_form_a_cycle(tmp_path: Path) -> None:
    back = '\n[[edges]]\nfrom = "listener"\nto = "speaker"\nmessage = true\nbackward = "none"\n'
    assert "edges: message edges form a cycle (listener_0 -> speaker_0 -> listener_0)" in reject(
        RECIPES["dni"].read_text() + back, tmp_path)


def test_the_plan_routes_every_env_agent() -> None:
    recipe, plan = prepare(RECIPES["dni"], [])
    assert recipe["run"]["name"] == "speaker-listener-ppo-dni" and recipe["edges"][4]["message"]
    assert {p: [a.name for a in c] for p, c in plan.chains.items()} == {
        "speaker_0": ["speaker", "speaker_head"], "listener_0": ["listener", "listener_head"]}
    assert [e.name for e in plan.messages] == ["speaker->listener"]
    assert plan.facts["listener_0"] == {"obs_dim": 11, "continuous": False, "action_dim": 5}


def run(tmp_path: Path, recipe: Path, overrides: list[str]) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    prepared, plan = prepare(recipe, overrides)
    run_dir, summary = execute(prepared, plan, out=tmp_path / "run", progress=False)
    assert summary["status"] == "completed", summary.get("error")
    return run_dir, summary


@pytest.mark.parametrize("mode", ["envchannel", "backprop", "dni", "none"])
def test_a_short_speaker_listener_run_completes_and_writes_its_records(tmp_path: Path, mode: str) -> None:
    run_dir, summary = run(tmp_path, RECIPES[mode], TINY)
    ev = summary["eval"]
    assert ev["episodes"] == 2 and ev["env_steps"] == 64 and ev["mean_length"] == 25
    assert ev["mean_return"] == pytest.approx(ev["mean_return/speaker_0"]) == ev["mean_return/listener_0"]
    agents = summary["agents"]
    assert agents["speaker"]["updates"] == agents["listener"]["updates"] == 2 * 16  # 2 rollouts x 4 x 4
    if mode == "dni":
        assert agents["speaker"]["speaker->listener/sg_trained"] == 32
        state = torch.load(run_dir / "checkpoints" / "speaker.pt", weights_only=True)
        assert set(state["message_synthetic_gradients"]) == {"speaker->listener"}
    assert (run_dir / "plots" / "returns.png").is_file()
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} == {
        "speaker.pt", "speaker_head.pt", "listener.pt", "listener_head.pt"}
    rows = [json.loads(line) for line in (run_dir / "metrics" / "env.jsonl").read_text().splitlines()]
    assert any("return/listener_0" in r for r in rows)


def test_a_plugged_in_env_with_an_agent_that_leaves_runs(tmp_path: Path) -> None:
    text = (RECIPES["backprop"].read_text().replace("speaker_0", "speaker").replace("listener_0", "listener")
            .replace("drop = [8, 9, 10]", "drop = [1]"))
    recipe = tmp_path / "signal.toml"
    recipe.write_text(text)
    _, summary = run(tmp_path, recipe, TINY + ['env.id="tests.agents.marl_envs:Signal"',
                                               "env.kwargs={length=4, leave_at=2}"])
    assert summary["eval"]["mean_length"] == 4 and summary["agents"]["env"]["episodes"] == 64 // 4
