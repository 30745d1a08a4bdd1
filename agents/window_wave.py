"""Delayed true-gradient targets across a ticking level: the multi-timescale form of ``interfaces.TargetWave``.

Why: with bootstrapped targets a middle level of a multi-timescale chain sends the level below
δ = Jᵀ M(out), the gradient of its own M's guess carried back through its window; two levels from the
loss that guess carries no credit (docs/RESULTS-dni.md). With ``synthesizer.target = "delayed"`` on its
in-edge the level keeps each window it trained on (its initial state and its n inputs) and, when the target
for that window's output comes back (true at the top, whose loss is real, and true below by induction),
re-runs the window at its current weights and sends each input's Jᵀ δ_true instead. It still updates at once
on M(out): only the lower level's M learns later.

``WindowReplay`` makes one window a function of one packed tensor [B, 2H + n * D_in] -> out [B, D_out], so
``TargetWave`` (bounded store, drop and mismatch counts, Jᵀ at the current weights) does the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from interfaces import StepBuffer, TargetWave, agreement

__all__ = ["WindowReplay", "WindowWave"]


class WindowReplay(nn.Module):
    """One TBPTT window of a ticking core from a packed [h0 | c0 | x_0 .. x_{n-1}] tensor to its output."""

    def __init__(self, core: nn.Module, n: int, in_dim: int) -> None:
        super().__init__()
        self.core, self.n, self.in_dim = core, n, in_dim

    @staticmethod
    def pack(state: tuple[Tensor, Tensor], inputs: Sequence[Tensor]) -> Tensor:
        """(h0, c0) [B, H] each and n inputs [B, *in_shape] -> [B, 2H + n * D_in], detached."""
        return torch.cat([state[0], state[1], *(x.flatten(1) for x in inputs)], 1).detach()

    def unpack_inputs(self, packed: Tensor) -> list[Tensor]:
        """The n per-tick slices [B, D_in] of a packed tensor (or of its gradient)."""
        xs = packed[:, 2 * self.core.hidden:]
        return [xs[:, i * self.in_dim:(i + 1) * self.in_dim] for i in range(self.n)]

    def forward(self, packed: Tensor) -> Tensor:
        hid = self.core.hidden
        state = (packed[:, :hid], packed[:, hid:2 * hid])
        for phase, x in enumerate(self.unpack_inputs(packed)):
            state = self.core.step(x, phase, state)
        return self.core.readout(state[0])  # [B, D_out]


class WindowWave:
    """A middle level's kept windows, keyed by their output step; gives the n true input targets per window.

    ``probe``: also keep the synthetic gradient applied at each output, and report how the bootstrapped
    target Jᵀ M(out) compares with the true Jᵀ δ (cosine and norm ratio, same Jacobian: the current weights).
    """

    def __init__(self, core: nn.Module, n: int, in_dim: int, edge: str, capacity: int) -> None:
        self.replay = WindowReplay(core, n, in_dim)
        self.edge = edge
        self.wave = TargetWave(self.replay, [edge], capacity)
        self.applied: StepBuffer[tuple[Tensor, Tensor]] = StepBuffer(capacity)  # (packed, M(out)) per window

    @property
    def dropped(self) -> int:
        return self.wave.dropped

    @property
    def unmatched(self) -> int:
        return self.wave.unmatched

    def remember(self, out_step: int, state: tuple[Tensor, Tensor], inputs: Sequence[Tensor],
                 applied: Tensor | None = None) -> None:
        packed = WindowReplay.pack(state, inputs)
        self.wave.remember(out_step, packed)
        if applied is not None:
            self.applied.put(out_step, (packed, applied.detach()))

    def resolve(self, out_step: int, delta: Tensor) -> tuple[list[Tensor], tuple[float, float] | None] | None:
        """The true target for each of the window's inputs [B, D_in], in tick order, and (with ``applied``) the
        bootstrapped targets' (cosine, norm ratio) against them; None if the window is no longer (or never was) kept."""
        grad = self.wave.add(self.edge, out_step, delta)
        kept = self.applied.pop(out_step)
        if grad is None:
            return None
        probe = None
        if kept is not None:
            packed, applied = kept
            boot = self.wave.input_gradient(packed, applied)
            skip = 2 * self.replay.core.hidden  # compare the input parts only, not the initial state's
            probe = agreement(boot[:, skip:], grad[:, skip:])
        return self.replay.unpack_inputs(grad), probe
