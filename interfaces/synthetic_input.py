"""Receiver side of a `forward = "synthetic"` edge: I(x) ~ h lets the receiver compute before the real
h arrives; I is trained on the real h when it does."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .buffer import StepBuffer
from .optim import adam
from .quality import relative_l2
from .synthesizers import Synthesizer, _shape, run_module


class SyntheticInput:
    """I lives at the receiver: I(x) ~ h so it can compute before h arrives."""

    def __init__(
        self,
        in_shape: int | Sequence[int],
        out_shape: int | Sequence[int],
        hidden: Sequence[int] = (),
        lr: float = 1e-4,
        capacity: int = 16,
        device: str | torch.device = "cpu",
    ) -> None:
        self.in_shape, self.out_shape = _shape(in_shape), _shape(out_shape)
        self.device = torch.device(device)
        self.module = Synthesizer(self.in_shape, self.out_shape, hidden).to(self.device)
        self.optimizer = adam(self.module.parameters(), lr=lr)
        self.buffer: StepBuffer[Tensor] = StepBuffer(capacity)
        self.unmatched = 0  # real h that came for a step no longer (or never) buffered
        self.trained = 0

    @property
    def dropped(self) -> int:
        """Steps evicted before their real h arrived."""
        return self.buffer.dropped

    def predict(self, step: int, x: Tensor) -> Tensor:
        """Synthetic h [B, *out_shape] from the shared input x [B, *in_shape] (detached, on x's device)."""
        xs = x.detach().to(self.device)
        if not xs.is_floating_point():
            xs = xs.float()
        self.buffer.put(step, xs)
        with torch.no_grad():
            return run_module(self.module, xs).to(x.device)

    def remember(self, step: int, x: Tensor) -> None:
        """Keep x for ``step`` so I can learn from the real h even if the receiver never computes on it."""
        xs = x.detach().to(self.device)
        self.buffer.put(step, xs if xs.is_floating_point() else xs.float())

    def learn(self, step: int, real_h: Tensor) -> dict[str, float] | None:
        """Train I on the real h [B, *out_shape] for `step`; None if that step is unknown."""
        xs = self.buffer.pop(step)
        if xs is None:
            self.unmatched += 1
            return None
        h = real_h.detach().to(device=self.device, dtype=xs.dtype)
        pred = run_module(self.module, xs)  # [B, *out_shape]
        loss = (pred - h).pow(2).reshape(xs.shape[0], -1).sum(1).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.trained += 1
        return {"si_loss": float(loss.detach()), "si_rel_error": relative_l2(pred, h)}
