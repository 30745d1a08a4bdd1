"""How good an interface is: the direction and size of a synthetic signal versus the real one.

Each metric flattens the whole batch into one vector and returns Python floats.
"""

from __future__ import annotations

import math

import torch

_EPS = 1e-12


def agreement(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """(cosine, norm ratio) of pred against target from one read of three dot products: logged for every
    synthesizer update, so they must be cheap. Cosine is 0.0 if either is all zeros; the norm ratio is
    ||pred|| / ||target|| (1 = the right size; 1.0 if both are zero, inf if only the target is)."""
    a, b = pred.detach().reshape(-1), target.detach().reshape(-1)
    ab, aa, bb = torch.stack((a @ b, a @ a, b @ b)).double().tolist()
    cos = ab / math.sqrt(aa * bb) if aa > 0 and bb > 0 else 0.0
    if bb == 0:
        return cos, 1.0 if aa == 0 else float("inf")
    return cos, math.sqrt(aa / bb)


def cosine(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Cosine similarity of the flattened tensors (0.0 if either is all zeros)."""
    return agreement(pred, target)[0]


def norm_ratio(pred: torch.Tensor, target: torch.Tensor) -> float:
    """||pred|| / ||target|| (1 = the right size; inf if target is zero and pred is not)."""
    return agreement(pred, target)[1]


def relative_l2(pred: torch.Tensor, target: torch.Tensor) -> float:
    """||pred - target|| / ||target||, the relative error of pred."""
    diff = (pred.detach().double() - target.detach().double()).norm()
    return float(diff / max(float(target.detach().double().norm()), _EPS))
