"""Building blocks: the modules an agent owns, built from a recipe's ``module`` table.

Each stage maps one activation to the next; a head maps its input to class logits and owns the loss.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


class LinearStage(nn.Sequential):
    """Linear -> BatchNorm1d -> ReLU: one hidden layer of the paper's MNIST FCN."""

    def __init__(self, in_features: int, out_features: int, batchnorm: bool = True, relu: bool = True) -> None:
        layers: list[nn.Module] = [nn.Flatten(), nn.Linear(in_features, out_features)]
        if batchnorm:
            layers.append(nn.BatchNorm1d(out_features))
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class ConvStage(nn.Sequential):
    """Conv (5x5 'same') -> BatchNorm2d -> ReLU -> optional 2x2 max-pool: one conv layer of the paper's CNN."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 5, pool: bool = True,
                 batchnorm: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU())
        if pool:
            layers.append(nn.MaxPool2d(2))
        super().__init__(*layers)


class ClassifierHead(nn.Module):
    """Flatten -> Linear to class logits; the head is the agent that sees the task loss."""

    def __init__(self, in_features: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, ...] -> [B, classes]
        return self.linear(x.flatten(1))

    @staticmethod
    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target)


MODULE_TYPES: dict[str, type[nn.Module]] = {
    "linear": LinearStage,
    "conv": ConvStage,
    "head": ClassifierHead,
}

# recipe key -> constructor argument, so recipes read naturally ("in", "out")
_ARG_NAMES = {"in": "in_features", "out": "out_features", "in_channels": "in_channels",
              "out_channels": "out_channels"}


def build_module(spec: dict[str, Any]) -> nn.Module:
    """Build an agent's module from its recipe table, e.g. ``{type="linear", in=784, out=256}``."""
    kind = spec.get("type")
    if kind not in MODULE_TYPES:
        raise ValueError(f"module.type: expected one of {sorted(MODULE_TYPES)}, got {kind!r}")
    kwargs = {_ARG_NAMES.get(k, k): v for k, v in spec.items() if k != "type"}
    try:
        return MODULE_TYPES[kind](**kwargs)
    except TypeError as err:
        raise ValueError(f"module: bad arguments for type {kind!r}: {err}") from None


def is_head(module: nn.Module) -> bool:
    return isinstance(module, ClassifierHead)
