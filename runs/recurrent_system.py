"""Recurrent recipes (``run.kind = "recurrent"``): one LSTM agent process on a sequence environment."""

from __future__ import annotations

from typing import Any

from agents import NodeSpec, validate_recurrent
from environments import LENGTHS

from .devices import resolve_device
from .recipe import RecipeError

FACTORY = "agents:RecurrentNode"
COPY_IDS = ("dnilab/Copy-v0", "dnilab/RepeatCopy-v0")


def check_recurrent(recipe: dict[str, Any]) -> None:
    """Reject a bad recurrent recipe, naming the key, before anything starts."""
    body = {k: v for k, v in recipe.items() if k in ("run", "env", "agent", "curriculum")}
    extra = sorted(set(recipe) - set(body) - {"paper"})
    if extra:
        raise RecipeError(f"{extra[0]}: not a section of a recurrent recipe")
    try:
        validate_recurrent(body)
    except ValueError as err:
        raise RecipeError(str(err)) from None
    lengths = body["env"].get("kwargs", {}).get("lengths", LENGTHS[0])
    if body["env"].get("id") in COPY_IDS and lengths not in LENGTHS:
        raise RecipeError(f"env.kwargs.lengths: must be one of {', '.join(map(repr, LENGTHS))}, got {lengths!r}")
    resolve_device(0, recipe["run"]["device"], "run.device", recipe["run"]["launcher"])


def recurrent_specs(recipe: dict[str, Any], plan: None, run_dir: str) -> list[NodeSpec]:
    device = resolve_device(0, recipe["run"]["device"], "run.device", recipe["run"]["launcher"])
    body = {k: v for k, v in recipe.items() if k in ("run", "env", "agent", "curriculum")}
    kwargs = {"recipe": body, "device": device, "run_dir": run_dir}
    return [NodeSpec("recurrent", FACTORY, kwargs, device=device, threads=1, required=True,
                     num_gpus=1.0 if device.startswith("cuda") else 0.0)]
