"""Recurrent recipes (``run.kind = "recurrent"``): one LSTM agent process on a sequence environment."""

from __future__ import annotations

from typing import Any

from agents import NodeSpec, agent_recipe
from environments import LENGTHS

from .devices import resolve_device
from .recipe import RecipeError

FACTORY = "agents:RecurrentNode"
COPY_IDS = ("dnilab/Copy-v0", "dnilab/RepeatCopy-v0")


def check_recurrent(recipe: dict[str, Any]) -> None:
    """What ``runs.config.RecurrentRunRecipe`` cannot check alone: the device is one this machine has."""
    lengths = recipe["env"].get("kwargs", {}).get("lengths", LENGTHS[0])
    if recipe["env"].get("id") in COPY_IDS and lengths not in LENGTHS:
        raise RecipeError(f"env.kwargs.lengths: must be one of {', '.join(map(repr, LENGTHS))}, got {lengths!r}")
    resolve_device(0, recipe["run"]["device"], "run.device", recipe["run"]["launcher"])


def recurrent_specs(recipe: dict[str, Any], plan: None, run_dir: str) -> list[NodeSpec]:
    device = resolve_device(0, recipe["run"]["device"], "run.device", recipe["run"]["launcher"])
    kwargs = {"recipe": agent_recipe(recipe), "device": device, "run_dir": run_dir}
    return [NodeSpec("recurrent", FACTORY, kwargs, device=device, threads=1, required=True,
                     num_gpus=1.0 if device.startswith("cuda") else 0.0)]
