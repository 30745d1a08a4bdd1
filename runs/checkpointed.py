"""A finished char-LM run brought back from its checkpoint, for the tools that study trained models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from agents import checkpoint_path, restore

from .recipe import RecipeError


def restore_run(run_dir: Path) -> tuple[dict[str, Any], Any, Any, Any]:
    """``(checkpoint, recipe spec, agent, training env)`` of a char-LM run folder; a folder without a recurrent
    checkpoint, or a recurrent run on another task, is a ``RecipeError`` that says so."""
    path = checkpoint_path(run_dir, "recurrent")
    if not path.is_file():
        raise RecipeError(f"{path}: no recurrent checkpoint (not a recurrent run folder, or the run never saved one)")
    import environments

    state = torch.load(path, map_location="cpu", weights_only=True)  # our own file, tensors only
    spec, agent, env = restore(state, make_env=environments.make)
    if spec.task != "lm":
        raise RecipeError(f"{run_dir}: env {spec.env_id!r} is not a char LM (these tools read text streams)")
    return state, spec, agent, env
