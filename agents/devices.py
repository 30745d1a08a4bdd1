"""Where each agent computes: ``cuda:{i % n}`` when GPUs exist, else CPU with a fair share of threads."""

from __future__ import annotations

import os

import torch


def pick_device(index: int, requested: str = "auto") -> str:
    """Agent ``index``'s device. ``auto`` spreads agents round-robin over the visible GPUs."""
    if requested != "auto":
        return requested
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return f"cuda:{index % n}" if n else "cpu"


def threads_per_agent(n_agents: int) -> int:
    """Torch threads for one CPU agent so that all agents together do not oversubscribe the cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, n_agents))
