"""Optimizers by name, so recipes can say ``optimizer = {name = "adam", lr = 1e-4}``; with
``decay = "cosine"`` (or ``"linear"``, and ``min_lr``, default 0) the learning rate falls over the run.

The decay follows the run's clock (the environment step an update belongs to, over ``run.steps``),
not the agent's update count: agents of one system update at different and irregular rates (a slow
level every k steps, a backprop sender when its true gradients arrive), and should anneal together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from interfaces import adam
from interfaces.optim import ADAMS

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    **ADAMS,  # built by interfaces.adam: fused where available, the same rule, a cheaper step
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
DECAYS = ("none", "cosine", "linear")
SCHEDULE_KEYS = ("decay", "min_lr")


def build_optimizer(spec: dict[str, Any], params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    kwargs = {key: value for key, value in spec.items() if key not in SCHEDULE_KEYS}
    name = kwargs.pop("name", "adam")
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer.name: expected one of {sorted(OPTIMIZERS)}, got {name!r}")
    decay = spec.get("decay", "none")
    if decay not in DECAYS:
        raise ValueError(f"optimizer.decay: expected one of {DECAYS}, got {decay!r}")
    if not isinstance(spec.get("min_lr", 0.0), (int, float)) or spec.get("min_lr", 0.0) < 0:
        raise ValueError(f"optimizer.min_lr: a number >= 0, got {spec['min_lr']!r}")
    try:
        if name in ADAMS:
            return adam(params, name, **kwargs)
        return OPTIMIZERS[name](params, **kwargs)
    except TypeError as err:
        raise ValueError(f"optimizer: bad arguments for {name!r}: {err}") from None


class StepDecay:
    """Sets each parameter group's lr from the run's progress: ``at(step)`` before each optimizer step."""

    def __init__(self, optimizer: torch.optim.Optimizer, spec: dict[str, Any], total_steps: int) -> None:
        self.optimizer = optimizer
        self.kind = spec.get("decay", "none")
        self.min_lr = float(spec.get("min_lr", 0.0))
        if self.kind != "none" and total_steps < 1:
            raise ValueError(f"optimizer.decay: {self.kind!r} needs the run's length in steps, got {total_steps}")
        self.total = max(int(total_steps), 1)
        self.base = [group["lr"] for group in optimizer.param_groups]

    def factor(self, step: int) -> float:
        """1 at step 0, 0 at the last step (then lr = min_lr)."""
        progress = min(max(step / self.total, 0.0), 1.0)
        if self.kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.kind == "linear":
            return 1.0 - progress
        return 1.0

    def at(self, step: int) -> None:
        if self.kind == "none":
            return
        f = self.factor(step)
        for group, base in zip(self.optimizer.param_groups, self.base):
            group["lr"] = self.min_lr + (base - self.min_lr) * f
