"""Adam for the synthesizers (and, through agents.optim, for the agents): fused where torch has it.

Every DNI edge takes one optimizer step per training step, on tiny tensors, so the per-step overhead of
the for-loop Adam dominates; torch's fused kernel (CPU since torch 2.4, CUDA) is about 2x cheaper there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

ADAMS: dict[str, type[torch.optim.Optimizer]] = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def adam(params: Iterable[torch.nn.Parameter], name: str = "adam", **kwargs: Any) -> torch.optim.Optimizer:
    """`torch.optim.Adam` (or AdamW) with `fused=True` unless the caller chose an implementation or this
    torch/device has no fused kernel; the update rule is the same either way."""
    params = list(params)
    cls = ADAMS[name]
    if "fused" not in kwargs and "foreach" not in kwargs:
        try:
            return cls(params, fused=True, **kwargs)
        except (RuntimeError, ValueError):  # e.g. torch < 2.4 on CPU, or parameters of other dtypes
            pass
    return cls(params, **kwargs)
