"""The small networks behind every interface: M(h, c) ~ dL/dh and I(x) ~ h.

Vectors get an MLP, images (C, H, W) get 5x5 convolutions. The last layer is zero-initialised so a
fresh synthesizer outputs exactly 0 (no harmful early gradients), as in Jaderberg et al.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Synthesizer(nn.Module):
    """Maps per-sample `in_shape` (+ optional one-hot context) to per-sample `out_shape`."""

    def __init__(
        self,
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...] | None = None,
        hidden: Sequence[int] = (),
        context_dim: int = 0,
    ) -> None:
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.out_shape = tuple(out_shape) if out_shape is not None else self.in_shape
        self.context_dim = context_dim
        self.conv = len(self.in_shape) == 3
        layers: list[nn.Module] = []
        if self.conv:
            c, hgt, wid = self.in_shape
            if len(self.out_shape) != 3 or self.out_shape[1:] != (hgt, wid):
                raise ValueError(f"conv synthesizer keeps H, W: in {self.in_shape}, out {self.out_shape}")
            width = c + context_dim
            for ch in hidden:
                layers += [nn.Conv2d(width, ch, 5, padding=2), nn.BatchNorm2d(ch), nn.ReLU()]
                width = ch
            last: nn.Module = nn.Conv2d(width, self.out_shape[0], 5, padding=2)
        else:  # any other rank: flatten to a vector
            width = math.prod(self.in_shape) + context_dim
            for units in hidden:
                layers += [nn.Linear(width, units), nn.BatchNorm1d(units), nn.ReLU()]
                width = units
            last = nn.Linear(width, math.prod(self.out_shape))
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def _context(self, context: Tensor | None, x: Tensor) -> Tensor | None:
        if self.context_dim == 0:
            return None
        if context is None:
            raise ValueError(f"synthesizer is conditioned (context_dim={self.context_dim}): pass context")
        if not context.is_floating_point():  # integer labels [B] -> one-hot [B, context_dim]
            context = F.one_hot(context.long().reshape(-1), self.context_dim)
        return context.to(device=x.device, dtype=x.dtype).reshape(x.shape[0], self.context_dim)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """x: [B, *in_shape], context: [B, context_dim] one-hot (or [B] int labels) -> [B, *out_shape]."""
        b = x.shape[0]
        c = self._context(context, x)
        if self.conv:
            if c is not None:  # tile context as extra channels: [B, K] -> [B, K, H, W]
                c = c[:, :, None, None].expand(b, self.context_dim, *x.shape[2:])
                x = torch.cat([x, c], dim=1)
            return self.net(x)
        x = x.reshape(b, -1)  # [B, prod(in_shape)]
        if c is not None:
            x = torch.cat([x, c], dim=1)  # [B, prod(in_shape) + K]
        return self.net(x).reshape(b, *self.out_shape)


def _shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (shape,) if isinstance(shape, int) else tuple(shape)


def run_module(module: Synthesizer, x: Tensor, context: Tensor | None = None) -> Tensor:
    """module(x, c); a batch of one cannot use batch statistics, so it uses the running ones."""
    if x.shape[0] > 1 or not module.training:
        return module(x, context)
    module.eval()
    try:
        return module(x, context)
    finally:
        module.train()
