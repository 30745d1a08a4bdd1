"""DNI inside an ordinary single-process PyTorch loop: ``BackwardInterface``, a module placed after a block.

    h = bi1(block1(x), context=y)   # block1's .grad holds dL/dθ1 through M1(h1) already: update unlocked
    h = bi2(block2(h), context=y)   # block2's .grad through M2(h2); M1 learns from the δ that reaches h1
    loss = F.cross_entropy(head(h), y)
    loss.backward()                  # head's .grad; M2 learns from the true dL/dh2

Why this design: the gradient a block receives must not wait for the rest of the network, so the interface
calls ``h.backward(M(h))`` in its forward, when h is made, and returns a fresh leaf in h's place. Backprop never
crosses it: the block's graph is freed at once, and whatever later reaches the leaf (the true gradient from a
loss, or the bootstrapped ``(dh'/dh)ᵀ M'(h')`` that the next interface's own ``backward`` sends) is the target
M learns from, with its own optimizer, at the moment it arrives. The user's loop stays a plain loop: one
``loss.backward()`` and the usual optimizer steps; nothing to schedule. In eval mode (or under ``no_grad``)
the interface is the identity, so the composed network is evaluated on real activations only.

M and its learning are ``SyntheticGradient``'s (the same per-sample scaling, zero-initialised last layer and
agreement statistics as an agent's edge); this module only ties them to autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .gradient import SyntheticGradient


class _Arrives(torch.autograd.Function):
    """Identity on a detached leaf whose backward hands the arriving gradient to ``receive`` and stops there."""

    @staticmethod
    def forward(ctx: Any, leaf: Tensor, receive: Callable[[Tensor], None]) -> Tensor:
        ctx.receive = receive
        return leaf.view_as(leaf)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, None]:
        with torch.enable_grad():  # M's learning step builds a graph of its own (backward runs without grad)
            ctx.receive(grad)
        return None, None  # nothing flows past the interface: the block already has its gradient


class BackwardInterface(nn.Module):
    """A synthetic gradient M(h, c) ≈ dL/dh for a block's output h, as a module (cf. dni-pytorch).

    ``shape``: h's per-sample shape (``128`` or ``(C, H, W)``); ``hidden``: M's hidden widths (``()`` is linear,
    the paper's DNI uses ``(1024, 1024)``); ``context_dim``: classes for cDNI (pass ``context=`` labels or one-hot).
    The loss downstream is assumed to be a mean over the batch, as the usual losses are. Zero the gradients
    before the forward (``opt.zero_grad(); loss = f(net(x)); loss.backward(); opt.step()``): the blocks get
    theirs during it, and a block's own optimizer may step right after its interface. Use the output in h's place
    everywhere: h's graph is spent once the interface has run.
    M's parameters are this module's (checkpoint it with the model); M has its own Adam, and its gradients are
    cleared after each of its steps, so an optimizer over the whole model leaves M alone.
    """

    def __init__(self, shape: int | Sequence[int], hidden: Sequence[int] = (), context_dim: int = 0,
                 lr: float = 1e-4, *, scale: float = 1.0, capacity: int = 16,
                 device: str | torch.device = "cpu", module: nn.Module | None = None) -> None:
        super().__init__()
        self.sg = SyntheticGradient(shape, hidden, context_dim, lr=lr, capacity=capacity, device=device,
                                    scale=scale, module=module)
        self.synthesizer = self.sg.module  # registered: .to(), .train()/.eval() and state_dict reach M
        self.step = 0  # one per training forward: pairs each h with the target that comes back for it
        self.last_stats: dict[str, float] = {}  # the latest {"sg_loss", "sg_cosine", "sg_norm_ratio"}

    def forward(self, h: Tensor, context: Tensor | None = None) -> Tensor:
        """h [B, *shape] -> the same values; in training, h's block gets M(h, context) as its gradient now."""
        if not (self.training and torch.is_grad_enabled() and h.requires_grad):
            return h
        self.step += 1
        step = self.step
        h.backward(self.sg.predict(step, h, context))  # dL/dθ of the block(s) upstream, through M
        return _Arrives.apply(h.detach().requires_grad_(), lambda grad: self.learn(grad, step))

    def learn(self, target: Tensor, step: int | None = None) -> dict[str, float] | None:
        """One step of M towards ``target`` (dL/dh for the batch of ``step``, default the latest forward).
        Called by autograd when a gradient reaches the output; call it yourself to teach M another target
        (e.g. a true gradient). None if that step's h is no longer kept (``capacity`` forwards at most)."""
        stats = self.sg.learn(self.step if step is None else step, target)
        self.synthesizer.zero_grad(set_to_none=True)  # M is stepped only by its own optimizer
        if stats is not None:
            self.last_stats = stats
        return stats

    def _apply(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> BackwardInterface:
        super()._apply(fn, *args, **kwargs)
        first = next(self.synthesizer.parameters(), None)
        if first is not None:
            self.sg.device = first.device  # predict and learn follow M wherever .to() moved it
        return self

    def extra_repr(self) -> str:
        return f"shape={self.sg.shape}, lr={self.sg.optimizer.param_groups[0]['lr']}"
