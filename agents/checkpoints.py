"""Where an agent's checkpoint lives in a run folder, and how it is written: one place for every agent kind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["checkpoint_path", "write_checkpoint"]


def checkpoint_path(run_dir: str | Path, agent: str) -> Path:
    """``<run_dir>/checkpoints/<agent>.pt``."""
    return Path(run_dir) / "checkpoints" / f"{agent}.pt"


def write_checkpoint(run_dir: str | Path, agent: str, state: dict[str, Any]) -> None:
    """Save ``state`` beside a temporary name, then replace: a run killed mid-write keeps the previous one."""
    path = checkpoint_path(run_dir, agent)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{agent}.pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
