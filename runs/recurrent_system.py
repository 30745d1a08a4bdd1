"""Recurrent recipes (``run.kind = "recurrent"``): one LSTM agent process on a sequence environment."""

from __future__ import annotations

from typing import Any

from agents import NodeSpec, agent_recipe

from .devices import resolve_device

FACTORY = "agents:RecurrentNode"


def check_recurrent(recipe: dict[str, Any]) -> None:
    """What ``runs.config.RecurrentRunRecipe`` cannot check alone: the device is one this machine has."""
    resolve_device(0, recipe["run"]["device"], "run.device", recipe["run"]["launcher"])


def recurrent_specs(recipe: dict[str, Any], plan: None, run_dir: str) -> list[NodeSpec]:
    device = resolve_device(0, recipe["run"]["device"], "run.device", recipe["run"]["launcher"])
    kwargs = {"recipe": agent_recipe(recipe), "device": device, "run_dir": run_dir}
    return [NodeSpec("recurrent", FACTORY, kwargs, device=device, threads=1, required=True,
                     num_gpus=1.0 if device.startswith("cuda") else 0.0)]
