"""How much of the gradient arriving at a truncation boundary can a model of the state predict?

Why: DNI's M(h) can only ever supply E[future gradient | h]. On the character LM its online cosine with its
target stays near 0.003, and that alone cannot tell "M learns badly" from "there is little to learn". This
probe takes a trained LM agent, walks its stream, and at each boundary computes the true γ-discounted future
gradient into h (what M's bootstrapped target estimates), then fits the best linear map h -> gradient by
ridge least squares on many boundaries at once (the optimum an online linear M could approach) and a small
MLP, and scores them on later boundaries they were not fitted on. Lower than the fit's cosine: M's online
learning is the problem; level with it: the signal is. The model is frozen here: in training it learns while
M does, so this is an upper bound on what an online M could find.

Shapes: N boundaries of B streams, H units; rows are flattened to [N * B, H] for the fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from interfaces import agreement

from .recurrent_agent import RecurrentAgent, WindowStream
from .tbptt import ridge_solve

__all__ = ["BoundaryPairs", "boundary_pairs", "fit_ceiling", "score"]


@dataclass
class BoundaryPairs:
    """States at N boundaries and the true gradients that arrived at them (per-sample scale, as M's target)."""

    h: Tensor  # [N, B, H]
    c: Tensor  # [N, B, H]
    target: Tensor  # [N, B, H]: Σ_k γ^(k-1) d(mean loss of window k after the boundary)/dh, k = 1..horizon
    next_window: Tensor  # [N, B, H]: the k = 1 term alone (γ-free)


def boundary_pairs(
    agent: RecurrentAgent,
    env: Any,
    window: int,
    boundaries: int,
    horizon: int,
    gamma: float,
    warmup: int = 50,
    on_boundary: Callable[[], None] | None = None,
) -> BoundaryPairs:
    """Walk ``env``'s stream (a char LM split) with the agent's core; after ``warmup`` windows, one boundary
    every ``horizon`` windows, its target taken through the next ``horizon`` windows of real text."""
    if horizon < 1 or boundaries < 1:
        raise ValueError(f"horizon and boundaries must be >= 1, got {horizon}, {boundaries}")
    stream = WindowStream(env)
    stream.reset()
    state = agent.core.init_state(int(env.unwrapped.batch_size), agent.device)

    def next_window() -> tuple[Tensor, Tensor, Tensor]:
        x, y, m, done = stream.window(window)
        if done:
            raise ValueError(
                f"the split ended after {stream_windows} windows: ask for fewer boundaries or a shorter horizon"
            )
        return agent.x(x), agent.y(y), agent.m(m)

    stream_windows = 0
    with torch.no_grad():
        for _ in range(warmup):
            x, _, _ = next_window()
            stream_windows += 1
            _, state = agent.core(x, state)
    rows: dict[str, list[Tensor]] = {"h": [], "c": [], "target": [], "next_window": []}
    for _ in range(boundaries):
        h = state[0].detach().requires_grad_(True)
        s: tuple[Tensor, ...] = (h, state[1].detach())
        losses = []
        for _ in range(horizon):
            x, y, m = next_window()
            stream_windows += 1
            out, s = agent.core(x, s)
            # Σ over steps and streams / T: its gradient into h_b is stream b's per-sample target
            losses.append(agent.learner.loss_fn(agent.readout(out), y, m, float(window)))
        first = torch.autograd.grad(losses[0], h, retain_graph=horizon > 1)[0]
        total = sum(gamma**k * loss for k, loss in enumerate(losses))
        target = torch.autograd.grad(total, h)[0] if horizon > 1 else first
        rows["h"].append(h.detach())
        rows["c"].append(state[1].detach())
        rows["target"].append(target)
        rows["next_window"].append(first)
        state = tuple(t.detach() for t in s)
        if on_boundary is not None:
            on_boundary()
    return BoundaryPairs(**{k: torch.stack(v) for k, v in rows.items()})


def score(pred: Tensor, target: Tensor) -> dict[str, float]:
    """Cosine and norm ratio as M's are logged (flattened), and R² about zero: the share of the target's
    energy the prediction explains (for the conditional mean, cosine² ≈ R² and norm ratio ≈ cosine)."""
    cos, ratio = agreement(pred, target)
    err = float(((target - pred) ** 2).sum())
    energy = float((target**2).sum())
    return {"cosine": cos, "norm_ratio": ratio, "r2": 1.0 - err / energy if energy > 0 else 0.0}


def _ridge(x: Tensor, y: Tensor, lam: float) -> Tensor:
    """W [D + 1, O] minimising |[x, 1] W - y|² + lam * n * |W|² (the bias not penalised)."""
    xb = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    return ridge_solve(xb.T @ xb, xb.T @ y, lam * len(x))


def _apply(x: Tensor, w: Tensor) -> Tensor:
    return x @ w[:-1] + w[-1]


def _mlp(x: Tensor, y: Tensor, xv: Tensor, yv: Tensor, hidden: int, epochs: int, seed: int) -> nn.Module:
    """One hidden layer, Adam, early-stopped on the validation rows' cosine."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, y.shape[1]))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    best, best_state = -2.0, None
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(256):
            loss = ((net(x[idx]) - y[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            cos = agreement(net(xv), yv)[0]
        if cos > best:
            best, best_state = cos, {k: v.clone() for k, v in net.state_dict().items()}
    if best_state is not None:
        net.load_state_dict(best_state)
    return net


def fit_ceiling(
    features: Tensor,
    target: Tensor,
    lambdas: tuple[float, ...] = (1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0),
    mlp_hidden: int = 256,
    mlp_epochs: int = 10,
    seed: int = 0,
    online: nn.Module | None = None,
) -> dict[str, Any]:
    """Fit on the first 60 % of boundaries, choose λ / the MLP's epoch on the next 20 %, score on the last
    20 % (later text). features [N, B, D], target [N, B, O]. Scores: ``constant`` (the fit rows' mean
    target, the best M that ignores the state), ``linear`` (ridge), ``mlp``; each on fit and test rows;
    ``online``: a trained M (features -> target) scored on the same test rows."""
    n = features.shape[0]
    a, b = int(0.6 * n), int(0.8 * n)
    if a < 1 or b <= a or n <= b:
        raise ValueError(f"need at least 3 boundaries to split 60/20/20, got {n}")

    def rows(t: Tensor, lo: int, hi: int) -> Tensor:
        return t[lo:hi].reshape(-1, t.shape[-1]).double()

    xf, yf = rows(features, 0, a), rows(target, 0, a)
    xv, yv = rows(features, a, b), rows(target, a, b)
    xt, yt = rows(features, b, n), rows(target, b, n)
    mean = yf.mean(0, keepdim=True)
    out: dict[str, Any] = {
        "rows": {"fit": len(xf), "choose": len(xv), "test": len(xt)},
        "target_norm": float(yt.norm(dim=1).mean()),
        "constant": {"fit": score(mean.expand_as(yf), yf), "test": score(mean.expand_as(yt), yt)},
    }
    fits = {lam: _ridge(xf, yf, lam) for lam in lambdas}
    lam = max(fits, key=lambda k: agreement(_apply(xv, fits[k]), yv)[0])
    w = fits[lam]
    out["linear"] = {"lambda": lam, "fit": score(_apply(xf, w), yf), "test": score(_apply(xt, w), yt)}
    if mlp_epochs > 0:
        net = _mlp(xf.float(), yf.float(), xv.float(), yv.float(), mlp_hidden, mlp_epochs, seed)
        with torch.no_grad():
            out["mlp"] = {
                "hidden": mlp_hidden,
                "fit": score(net(xf.float()).double(), yf),
                "test": score(net(xt.float()).double(), yt),
            }
    if online is not None:
        with torch.no_grad():
            out["online"] = {"test": score(online(xt.float()).double(), yt)}
    return out
