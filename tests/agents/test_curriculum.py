"""The length curriculum with per-sequence lengths: per-step error over the mean output steps, and the
Copy env's ``lengths`` key through a recipe (agent run and recipe check)."""

from __future__ import annotations

import pytest

import environments  # noqa: F401  (registers dnilab/Copy-v0 etc.)
from agents import run_recurrent
from agents.curriculum import Curriculum, CurriculumConfig
from runs.execute import plan_recipe
from runs.recipe import RecipeError


def test_step_unit_divides_by_mean_output_steps() -> None:
    cur = Curriculum(CurriculumConfig(threshold=0.15, avg_over=1, unit="step"))
    assert cur.error(0.5, 2.5) == pytest.approx(0.2)  # 2.5 output steps per sequence on average
    assert not cur.update(0.5, 2.5)
    assert cur.update(0.3, 2.5) and cur.max_length == 1


def _recipe(lengths: str) -> dict:
    return {
        "run": {"kind": "recurrent", "steps": 12, "seed": 0, "log_every": 4},
        "env": {"id": "dnilab/Copy-v0", "kwargs": {"bits": 3, "lengths": lengths}},
        "agent": {"hidden": 8, "window": 3, "batch_size": 6, "sg": "none"},
        "curriculum": {"avg_over": 1, "threshold": 100.0, "unit": "step"},
    }


@pytest.mark.parametrize("lengths", ["uniform", "level"])
def test_run_with_each_lengths_mode(lengths: str) -> None:
    reports: list[dict] = []
    out = run_recurrent(_recipe(lengths), lambda s, m: reports.append(m), lambda: False)
    assert out["max_length"] >= 2  # threshold 100 bits: every episode passes its level
    last = reports[-1]
    assert 0 < last["bits_per_step"] <= last["bits_per_seq"]


def test_recipe_rejects_bad_lengths_before_start() -> None:
    with pytest.raises(RecipeError, match=r"env\.kwargs\.lengths: must be one of 'uniform', 'level'"):
        plan_recipe(_recipe("mixed"))
    plan_recipe(_recipe("level"))
