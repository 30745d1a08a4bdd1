"""Optimizers by name and the run-clock lr decay: the schedule's shape, and bad settings named."""

from __future__ import annotations

import math

import pytest
import torch

from agents.optim import StepDecay, build_optimizer


def _decayed(spec: dict, total: int, step: int) -> float:
    opt = build_optimizer(spec, [torch.zeros(1, requires_grad=True)])
    decay = StepDecay(opt, spec, total)
    decay.at(step)
    return opt.param_groups[0]["lr"]


@pytest.mark.parametrize("kind,halfway", [("cosine", 0.55), ("linear", 0.55), ("none", 1.0)])
def test_decay_runs_from_lr_to_min_lr_over_the_run(kind: str, halfway: float) -> None:
    spec = {"name": "adam", "lr": 1.0, "decay": kind, "min_lr": 0.1}
    assert _decayed(spec, 100, 0) == pytest.approx(1.0)
    assert _decayed(spec, 100, 50) == pytest.approx(halfway)
    assert _decayed(spec, 100, 100) == pytest.approx(0.1 if kind != "none" else 1.0)
    assert _decayed(spec, 100, 500) == pytest.approx(0.1 if kind != "none" else 1.0)  # past the end: stays


def test_cosine_is_slow_at_first_and_linear_is_not() -> None:
    cosine = _decayed({"lr": 1.0, "decay": "cosine"}, 100, 10)
    linear = _decayed({"lr": 1.0, "decay": "linear"}, 100, 10)
    assert linear == pytest.approx(0.9) and cosine == pytest.approx(0.5 * (1 + math.cos(0.1 * math.pi)))
    assert cosine > linear


@pytest.mark.parametrize("spec,key", [
    ({"name": "adam", "decay": "step"}, "optimizer.decay"),
    ({"name": "adam", "decay": "cosine", "min_lr": -1}, "optimizer.min_lr"),
    ({"name": "adamz"}, "optimizer.name"),
    ({"name": "sgd", "lr": 0.1, "betas": (0.9, 0.9)}, "optimizer: bad arguments"),
])
def test_bad_settings_are_named(spec: dict, key: str) -> None:
    with pytest.raises(ValueError, match=f"^{key}"):
        build_optimizer(spec, [torch.zeros(1, requires_grad=True)])


def test_a_decay_needs_the_run_length() -> None:
    opt = build_optimizer({"decay": "cosine"}, [torch.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match="run's length"):
        StepDecay(opt, {"decay": "cosine"}, 0)
