"""Optimizers by name, so recipes can say ``optimizer = {name = "adam", lr = 1e-4}``."""

from __future__ import annotations

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


def build_optimizer(spec: dict[str, Any], params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    kwargs = dict(spec)
    name = kwargs.pop("name", "adam")
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer.name: expected one of {sorted(OPTIMIZERS)}, got {name!r}")
    try:
        if name in ADAMS:
            return adam(params, name, **kwargs)
        return OPTIMIZERS[name](params, **kwargs)
    except TypeError as err:
        raise ValueError(f"optimizer: bad arguments for {name!r}: {err}") from None
