"""Sender side of a `dni` / `cdni` edge: M(h, c) gives the gradient for h now, and is trained later
when the receiver's (bootstrapped) target for that step comes back."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .buffer import StepBuffer
from .learner import BackgroundLearner
from .optim import adam
from .quality import agreement
from .synthesizers import Synthesizer, _shape, run_module

LEARNERS = ("inline", "thread")


class SyntheticGradient:
    """M lives at the sender. Works at per-sample scale: M is trained on target * B and predict returns
    M(h) / B, so that M sees O(1) values while the agent applies the gradient of its batch-mean loss.

    ``learner = "thread"`` runs M's learning step on a thread of its own (``BackgroundLearner``): ``learn``
    only queues the target and returns the mean statistics of the steps fitted since its last call, and
    ``predict`` reads M as the thread last left it. Call ``close`` when done. (Only the optimizer step is
    locked against ``predict``: a batch of one, which ``predict`` runs with M's running statistics, may put a
    concurrent learning forward in eval mode for that moment.)"""

    def __init__(
        self,
        shape: int | Sequence[int],
        hidden: Sequence[int] = (),
        context_dim: int = 0,
        lr: float = 1e-4,
        capacity: int = 16,
        device: str | torch.device = "cpu",
        scale: float = 1.0,
        loss_weight: float = 1.0,
        module: nn.Module | None = None,
        learner: str = "inline",
        updates: int = 1,
    ) -> None:
        if learner not in LEARNERS:
            raise ValueError(f"learner: expected one of {LEARNERS}, got {learner!r}")
        self.shape = _shape(shape)
        self.device = torch.device(device)
        self.scale = scale  # multiplies the gradient predict returns (not M's training target)
        self.loss_weight = loss_weight
        self.updates = updates  # M's optimizer steps on each (h, target) pair
        # module: an M of the caller's own design, called as module(h, context); default: an MLP Synthesizer
        if module is None:
            module = Synthesizer(self.shape, self.shape, hidden, context_dim)
        self.module = module.to(self.device)
        self.optimizer = adam(self.module.parameters(), lr=lr)
        self.buffer: StepBuffer[tuple[Tensor, Tensor | None]] = StepBuffer(capacity)
        self.unmatched = 0  # targets that came back for a step no longer (or never) buffered
        self.trained = 0
        self._lock = threading.Lock()  # M's weights change only under it; predict and state_dict read under it
        self.learner = BackgroundLearner(self._fit, capacity) if learner == "thread" else None

    @property
    def dropped(self) -> int:
        """Steps evicted before their target came back."""
        return self.buffer.dropped

    def predict(self, step: int, h: Tensor, context: Tensor | None = None) -> Tensor:
        """Synthetic dL/dh for h [B, *shape] (detached, on h's device); keeps (h, c) to learn from."""
        x = h.detach().to(self.device)
        c = context.detach().to(self.device) if context is not None else None
        self.buffer.put(step, (x, c))
        with torch.no_grad(), self._lock:
            g = run_module(self.module, x, c)  # [B, *shape], per-sample scale
        return (g * (self.scale / x.shape[0])).to(h.device)

    def learn(self, step: int, target: Tensor) -> dict[str, float] | None:
        """Train M on the target gradient for `step` ([B, *shape], batch-mean scale); None if unknown."""
        entry = self.buffer.pop(step)
        if entry is None:
            self.unmatched += 1
            return None
        x, c = entry
        tgt = target.detach().to(device=self.device, dtype=x.dtype) * x.shape[0]  # per-sample scale
        if self.learner is None:
            return self._fit(x, c, tgt)
        self.learner.submit(x, c, tgt)
        return self.learner.results()

    def _fit(self, x: Tensor, c: Tensor | None, tgt: Tensor) -> dict[str, float]:
        """``updates`` learning steps of M on (x, c) -> tgt (per-sample scale); statistics of the first,
        so they say how well M predicted the target before it learned from it."""
        stats: dict[str, float] = {}
        for _ in range(self.updates):
            pred = run_module(self.module, x, c)  # [B, *shape]
            loss = self.loss_weight * (pred - tgt).pow(2).reshape(x.shape[0], -1).sum(1).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            with self._lock:
                self.optimizer.step()
            if not stats:
                cos, ratio = agreement(pred, tgt)
                stats = {"sg_loss": float(loss.detach()), "sg_cosine": cos, "sg_norm_ratio": ratio}
        self.trained += 1
        return stats

    def state_dict(self) -> dict[str, Tensor]:
        """M's weights, copied between two of its updates (safe while a learner thread runs)."""
        with self._lock:
            return {key: value.detach().clone() for key, value in self.module.state_dict().items()}

    def close(self) -> None:
        """Fit what the learner thread has queued and stop it (nothing to do inline)."""
        if self.learner is not None:
            self.learner.close()
