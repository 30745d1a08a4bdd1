"""Receiver side of a `dni` / `cdni` edge whose M learns from the true gradient, delivered late by a backward
wave instead of bootstrapped from the receiver's own M.

With bootstrapped targets the receiver B sends its sender A the gradient J_B^T M_B(h_B) at once: every M
downstream of the head learns from another M's guess, and the guesses compound (with the paper's DNI MLP
the first layer's M ends up with a cosine of about 0 to the true gradient). With the wave, B keeps the input
x_s it trained on and, when the target for its own output at step s comes back (true at the head, and true
by induction further down), sends A the true J_B^T delta_s. A still updates at once on M(h) (update unlock);
only M's training target arrives later: 2 hops per agent between A and the head.

The Jacobian is taken at B's current weights (B has updated since step s); the input is the one B used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .buffer import StepBuffer

SG_TARGETS = ("bootstrap", "delayed")  # what M on a dni/cdni edge learns from


@dataclass
class _Entry:
    x: Tensor                       # the input the receiver trained on at this step, [B, *in_shape]
    waiting: set[str]               # out-edges whose target for this step has not come back yet
    grad: Tensor | None = field(default=None)  # sum of the targets for the receiver's output so far


class TargetWave:
    """Holds each step's input until the targets of every listed out-edge are back, then gives dL/dx."""

    def __init__(self, module: nn.Module, out_edges: Sequence[str], capacity: int) -> None:
        self.module = module
        self.out_edges = tuple(out_edges)
        self.store: StepBuffer[_Entry] = StepBuffer(capacity)
        self.unmatched = 0  # targets for steps no longer (or never) stored

    @property
    def dropped(self) -> int:
        """Steps evicted before all their targets came back."""
        return self.store.dropped

    def remember(self, step: int, x: Tensor) -> None:
        self.store.put(step, _Entry(x.detach(), set(self.out_edges)))

    def add(self, edge: str, step: int, grad_h: Tensor) -> Tensor | None:
        """Take the target for the output at ``step`` on ``edge``; returns dL/dx once all are in, else None."""
        entry = self.store.pop(step)
        if entry is None or edge not in entry.waiting:
            self.unmatched += 1
            if entry is not None:
                self.store.put(step, entry)
            return None
        entry.grad = grad_h if entry.grad is None else entry.grad + grad_h
        entry.waiting.discard(edge)
        if entry.waiting:
            self.store.put(step, entry)
            return None
        return self.input_gradient(entry.x, entry.grad)

    def input_gradient(self, x: Tensor, grad_h: Tensor) -> Tensor:
        """J^T grad_h at the current weights; BatchNorm batch statistics as in training, running ones untouched."""
        x = x.detach().requires_grad_(True)
        params = dict(self.module.named_parameters())
        buffers = {k: v.clone() for k, v in self.module.named_buffers()}  # a train-mode pass must not move them
        h = functional_call(self.module, (params, buffers), (x,))
        (gx,) = torch.autograd.grad(h, x, grad_h.to(h.dtype))
        return gx
