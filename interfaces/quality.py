"""How good an interface is: the direction and size of a synthetic signal versus the real one.

Each metric flattens the whole batch into one vector and returns a Python float.
"""

from __future__ import annotations

import torch

_EPS = 1e-12


def cosine(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Cosine similarity of the flattened tensors (0.0 if either is all zeros)."""
    a, b = pred.detach().reshape(-1).double(), target.detach().reshape(-1).double()
    denom = a.norm() * b.norm()
    return float((a @ b) / denom) if denom > 0 else 0.0


def norm_ratio(pred: torch.Tensor, target: torch.Tensor) -> float:
    """||pred|| / ||target|| (1 = the right size; inf if target is zero and pred is not)."""
    a, b = pred.detach().double().norm(), target.detach().double().norm()
    if b == 0:
        return 1.0 if a == 0 else float("inf")
    return float(a / b)


def relative_l2(pred: torch.Tensor, target: torch.Tensor) -> float:
    """||pred - target|| / ||target||, the relative error of pred."""
    diff = (pred.detach().double() - target.detach().double()).norm()
    return float(diff / max(float(target.detach().double().norm()), _EPS))
