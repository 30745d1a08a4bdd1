"""Named merge rules: how an agent with several input edges (fan-in) combines what arrives on them.

An agent's input is the merge of one tensor per in-edge, in the agent's edge order (the order of its
in-edges in the recipe). Each part is ``[B, *shape_i]``; the batch axis is never merged.

- ``"concat"`` (the default): parts joined along the first per-sample axis (features, or channels of an
  image); every other per-sample axis must agree. ``[B, 64]`` + ``[B, 32]`` -> ``[B, 96]``.
- ``"sum"``: parts added; every part has the same shape.

``merged_shape`` checks the shapes before anything starts (errors name the edges); ``merge_inputs`` merges the
tensors of one step; ``split_gradient`` splits dL/d(merged) back into dL/d(part) per edge, the same values
autograd gives through ``merge_inputs``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["MERGES", "merge_inputs", "merged_shape", "split_gradient"]

MERGES = ("concat", "sum")


def _check_rule(rule: str) -> None:
    if rule not in MERGES:
        raise ValueError(f"merge: expected one of {MERGES}, got {rule!r}")


def merged_shape(rule: str, shapes: Sequence[Sequence[int]], edges: Sequence[str] | None = None) -> tuple[int, ...]:
    """Per-sample shape of the merge of parts with per-sample ``shapes`` (in edge order); ``edges`` names them
    in errors. ValueError if the rule is unknown or the shapes do not fit it."""
    _check_rule(rule)
    shapes = [tuple(int(d) for d in s) for s in shapes]
    names = list(edges) if edges is not None else [f"input {i}" for i in range(len(shapes))]
    if not shapes:
        raise ValueError(f"merge {rule!r}: no inputs to merge")
    if len(names) != len(shapes):
        raise ValueError(f"merge {rule!r}: {len(shapes)} shapes but {len(names)} edge names")
    listed = ", ".join(f"{n} gives {list(s)}" for n, s in zip(names, shapes))
    first = shapes[0]
    if rule == "sum":
        for n, s in zip(names, shapes):
            if s != first:
                raise ValueError(f"merge 'sum': every input needs the same shape; edge {n} gives {list(s)}, "
                                 f"edge {names[0]} {list(first)} ({listed})")
        return first
    for n, s in zip(names, shapes):
        if not s:
            raise ValueError(f"merge 'concat': edge {n} gives a scalar per sample; nothing to concatenate ({listed})")
        if len(s) != len(first) or s[1:] != first[1:]:
            raise ValueError(f"merge 'concat': inputs may differ only on their first axis; edge {n} gives "
                             f"{list(s)}, edge {names[0]} {list(first)} ({listed})")
    return (sum(s[0] for s in shapes), *first[1:])


def merge_inputs(rule: str, parts: Sequence[Tensor]) -> Tensor:
    """The merged input ``[B, *merged_shape]`` of one step's parts ``[B, *shape_i]`` (edge order); one part is
    returned as is."""
    _check_rule(rule)
    if len(parts) == 1:
        return parts[0]
    if rule == "sum":
        out = parts[0]
        for p in parts[1:]:
            out = out + p
        return out
    return torch.cat(list(parts), dim=1)


def split_gradient(rule: str, grad: Tensor, shapes: Sequence[Sequence[int]]) -> list[Tensor]:
    """dL/d(part) for each part (edge order) from dL/d(merged) ``grad`` ``[B, *merged_shape]``: a slice of the
    first per-sample axis per part (concat), or the whole gradient for every part (sum)."""
    _check_rule(rule)
    if len(shapes) == 1:
        return [grad]
    if rule == "sum":
        return [grad for _ in shapes]
    return list(torch.split(grad, [int(s[0]) for s in shapes], dim=1))
