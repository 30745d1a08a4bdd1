"""Multiscale recipes: the shipped ones check, bad keys are rejected naming the key, and a tiny run goes end
to end (all nodes in this process) with an evaluation that reports test accuracy and training seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from runs.execute import execute, prepare
from runs.multiscale_system import compare, plot_multiscale, quarter_means
from runs.recipe import RecipeError
from runs.sweep import sweep_cells

from .conftest import MULTISCALE_TINY as TINY
from .conftest import MULTISCALE_TINY_NET

RUNS = Path(__file__).resolve().parents[2] / "runs"
RECIPES = ["multiscale-backprop.toml", "multiscale-dni.toml", "multiscale-cdni.toml", "multiscale3-dni.toml"]
# a run that finishes in seconds in this process: 48 steps, an 8-unit fast agent, a 16-step evaluation episode
TINY_RUN = MULTISCALE_TINY_NET + ["run.steps=48", "run.launcher=inproc"]


@pytest.mark.parametrize("name", RECIPES)
def test_shipped_recipes_check(name: str) -> None:
    recipe, plan = prepare(RUNS / name, TINY)
    assert recipe["run"]["kind"] == "multiscale"
    assert plan.schedule.periods[0] == 1 and plan.schedule.periods[-1] == recipe["env"]["kwargs"]["k"]
    assert plan.graph.agent(plan.levels[-1]).head


def test_three_level_recipe_has_three_periods() -> None:
    _, plan = prepare(RUNS / "multiscale3-dni.toml", TINY)
    assert plan.schedule.periods == (1, 4, 16)


def test_hidden_auto_gives_the_slow_core_about_k_times_the_compute() -> None:
    _, plan = prepare(RUNS / "multiscale-dni.toml", TINY)
    ratio = plan.macs["slow"] / plan.macs["fast"]
    assert 3.6 < ratio < 4.4


def test_k_sweep_cells_check() -> None:
    _, cells = sweep_cells(RUNS / "sweeps" / "multiscale-k.toml")
    assert len(cells) >= 6
    for _, recipe, overrides in cells:
        _, plan = prepare(recipe, overrides + TINY)
        assert plan.schedule.periods[-1] == int(next(o for o in overrides if "env.kwargs.k" in o).split("=")[1])


def test_long_sweep_gives_every_system_the_same_decaying_fast_agent() -> None:
    _, cells = sweep_cells(RUNS / "sweeps" / "multiscale-long.toml")
    assert len(cells) == 9
    for _, recipe, overrides in cells:
        checked, plan = prepare(recipe, overrides + TINY)
        assert checked["run"]["steps"] == 96000
        assert plan.graph.agent("fast").optimizer == {"name": "adam", "lr": 3e-4, "decay": "cosine"}


@pytest.mark.parametrize("override,key", [
    ("levels.slow.hiden=3", "levels.slow.hiden"),
    ("levels.fast.backward=dni", "levels.fast.backward"),
    ("levels.slow.period=3", "levels.slow.period"),
    ("levels.fast.window=2", "levels.fast.window"),
    ("levels.slow.backward=sideways", "levels.slow.backward"),
    ("defaults.edge.forward=synthetic", "defaults.edge.forward"),
    ("levels.slow.synthesizer.depth=2", "levels.slow.synthesizer.depth"),
    ("levels.slow.hidden=big", "levels.slow.hidden"),
    ("env.kwargs.episode_length=18", "levels"),
    ("agents.x=1", "agents"),
    ("levels.slow.slowdown=0.5", "levels.slow.slowdown"),
    ("defaults.edge.synthesizer.context=label", "defaults.edge.synthesizer.context"),
    ("defaults.edge.synthesizer.encoder=0", "defaults.edge.synthesizer.encoder"),
    ("defaults.edge.synthesizer.pool=0", "defaults.edge.synthesizer.pool"),
    ('defaults.edge.synthesizer.learner="process"', "defaults.edge.synthesizer.learner"),
    ("defaults.edge.synthesizer.pool=3", "levels.slow.synthesizer.pool"),  # 28 x 28 digits: 3 does not divide 28
    ('levels.fast.optimizer={name="adam", decay="step"}', "levels.fast.optimizer.decay"),
    ('levels.slow.optimizer={name="adamz"}', "levels.slow.optimizer.name"),
    ('levels.slow.device="cuda:99"', "levels.slow.device"),
    ('run.device="tpu:0"', "run.device"),
])
def test_bad_keys_are_rejected_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(RecipeError) as err:
        prepare(RUNS / "multiscale-dni.toml", TINY + [override])
    assert str(err.value).startswith(key)


def test_a_shared_input_encoder_needs_the_inputs_context() -> None:
    prepare(RUNS / "multiscale-dni.toml", TINY + ["defaults.edge.synthesizer.encoder=8"])  # context "inputs": fine
    with pytest.raises(RecipeError, match=r"^defaults.edge.synthesizer.encoder: .*context = 'state'"):
        prepare(RUNS / "multiscale-dni.toml", TINY + ["defaults.edge.synthesizer.encoder=8",
                                                       'defaults.edge.synthesizer.context="state"'])


def test_pooled_inputs_need_the_inputs_context() -> None:
    _, plan = prepare(RUNS / "multiscale-dni.toml", TINY + ["defaults.edge.synthesizer.pool=2"])
    assert plan.graph.edges[1].synthesizer["pool"] == 2
    with pytest.raises(RecipeError, match=r"^defaults.edge.synthesizer.pool: .*context = 'state'"):
        prepare(RUNS / "multiscale-dni.toml", TINY + ['defaults.edge.synthesizer={context="state", pool=2}'])


def test_cdni_only_into_the_top_level() -> None:
    with pytest.raises(RecipeError, match=r"^levels.mid.backward: 'cdni' only"):
        prepare(RUNS / "multiscale3-dni.toml", TINY + ["levels.mid.backward=cdni"])


def test_tiny_run_end_to_end(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    recipe, plan = prepare(RUNS / "multiscale-cdni.toml", TINY_RUN + ["run.eval_every=24"])
    run_dir, summary = execute(recipe, plan, out=tmp_path / "run", progress=False)
    assert summary["status"] == "completed", summary.get("error")
    assert 0.0 <= summary["eval"]["test_accuracy"] <= 100.0 and summary["eval"]["train_s"] > 0
    assert {level: summary["agents"][level]["placed"] for level in ("fast", "slow")} == {
        a.name: a.device for a in plan.graph.agents}  # what the recipe planned ("auto": cpu here), read in the agent
    rows = [json.loads(line) for line in (run_dir / "metrics" / "eval.jsonl").read_text().splitlines()]
    assert [r["at"] for r in rows] == [24, 48] and all("time" in r and "test_accuracy" in r for r in rows)
    assert rows[-1]["examples"] == 4 * 16 // 4  # every slow tick of the 16-step eval episode, 4 streams
    png = plot_multiscale([run_dir], tmp_path / "fig.png")
    assert png.stat().st_size > 0
    assert plot_multiscale([run_dir], tmp_path / "zoom.png", ymin=50.0).stat().st_size > 0
    assert compare(run_dir, [])[0]["reach_ratio"] is not None


def test_m_learning_on_its_own_thread_runs_end_to_end(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    recipe, plan = prepare(RUNS / "multiscale-dni.toml", TINY_RUN + ['defaults.edge.synthesizer.learner="thread"'])
    run_dir, summary = execute(recipe, plan, out=tmp_path / "run", progress=False)
    assert summary["status"] == "completed", summary.get("error")
    fast = summary["agents"]["fast"]
    assert fast["sg/backlog"] == 0 and fast["sg/unmatched"] == 0  # every target fitted before the end
    saved = torch.load(run_dir / "checkpoints" / "fast.pt", weights_only=True)["synthetic_gradient"]
    assert any(value.abs().sum() > 0 for key, value in saved.items() if key.startswith("trunk.net.3"))  # M learned


def test_a_decaying_lr_follows_the_run_clock(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    recipe, plan = prepare(RUNS / "multiscale-dni.toml", TINY_RUN + [
        "run.eval_every=48", "run.metrics_every=8", 'levels.fast.optimizer={name="adam", lr=1e-3, decay="linear"}'])
    run_dir, summary = execute(recipe, plan, out=tmp_path / "run", progress=False)
    assert summary["status"] == "completed", summary.get("error")
    fast = [json.loads(line) for line in (run_dir / "metrics" / "fast.jsonl").read_text().splitlines()]
    slow = [json.loads(line) for line in (run_dir / "metrics" / "slow.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in fast if "lr" in r]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.1e-3  # falls with the env step, near 0 at the end
    assert fast[-1]["lr"] == pytest.approx(1e-3 * (1 - fast[-1]["step"] / 48))
    assert {r["lr"] for r in slow if "lr" in r} == {1e-3}  # the slow level kept its constant lr


def test_three_levels_with_delayed_targets_run_end_to_end(tmp_path: Path) -> None:
    # the recipe's dni edges default to target = "delayed": mid keeps its windows and sends the true targets down
    torch.set_num_threads(1)
    recipe, plan = prepare(RUNS / "multiscale3-dni.toml", TINY_RUN + ["run.steps=64", "env.kwargs.episode_length=64"])
    assert plan.graph.in_edge("mid").sg_target == "delayed"
    run_dir, summary = execute(recipe, plan, out=tmp_path / "run", progress=False)
    assert summary["status"] == "completed", summary.get("error")
    mid = summary["agents"]["mid"]
    assert mid["wave/dropped"] == 0 and mid["wave/unmatched"] == 0
    assert summary["agents"]["fast"]["sg/unmatched"] == 0


def test_quarter_means_average_each_quarter_of_the_steps(tmp_path: Path) -> None:
    (tmp_path / "metrics").mkdir()
    rows = [{"step": s, "sg/sg_cosine": float(s // 25)} for s in range(0, 100, 5)] + [{"step": 99, "other": 1.0}]
    (tmp_path / "metrics" / "mid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = quarter_means(tmp_path, "mid", ["sg/sg_cosine", "missing"])
    assert out == {"sg/sg_cosine": [0.0, 1.0, 2.0, 3.0], "missing": [None] * 4}
