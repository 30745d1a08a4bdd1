"""Where each agent computes: ``cuda:{i % n}`` when GPUs exist, else CPU with a fair share of threads."""

from __future__ import annotations

import os
from typing import Any

import torch


def pick_device(index: int, requested: str = "auto", here: bool = True) -> str:
    """Agent ``index``'s device. ``auto`` spreads agents round-robin over the visible GPUs. With ``here`` (the agent
    starts on this machine), an explicit CUDA device must exist here: a ``ValueError`` says why not, so that a
    recipe is rejected before any process starts rather than each agent failing inside its own process."""
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested == "auto":
        return f"cuda:{index % n}" if n else "cpu"
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise ValueError(f"{requested!r} is not a device (expected auto, cpu, cuda or cuda:N)") from None
    if here and device.type == "cuda":
        if n == 0:
            raise ValueError(f"{requested!r} asked for, but no CUDA device is visible here (torch "
                             f"{torch.__version__}); use 'auto' or 'cpu'")
        if device.index is not None and device.index >= n:
            raise ValueError(f"{requested!r} asked for, but only {n} CUDA device(s) are visible here")
    if here and device.type not in ("cpu", "cuda") and not _available(device.type):
        raise ValueError(f"{requested!r} asked for, but torch {torch.__version__} has no usable {device.type} "
                         "backend here; use 'auto' or 'cpu'")
    return requested


def _available(backend: str) -> bool:
    """Whether torch can run on ``backend`` (mps, xpu, ...) here; unknown backends count as unavailable."""
    module = getattr(torch.backends, backend, None) or getattr(torch, backend, None)
    is_available = getattr(module, "is_available", None)
    return bool(is_available()) if callable(is_available) else False


def threads_per_agent(n_agents: int) -> int:
    """Torch threads for one CPU agent so that all agents together do not oversubscribe the cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, n_agents))


def cores_per_agent(index: int, n_agents: int) -> tuple[int, ...]:
    """The cores agent ``index`` of ``n_agents`` is pinned to: an equal, disjoint share of this process's cores
    (the same share ``threads_per_agent`` counts), or one core shared round-robin when agents outnumber cores."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if n_agents >= len(cores):
        return (cores[index % len(cores)],)
    share = len(cores) // max(1, n_agents)
    return tuple(cores[index * share:(index + 1) * share])


def placement(module: torch.nn.Module) -> dict[str, Any]:
    """Where a module's parameters really are and the cores its process may use, read inside the agent's own
    process, and on CUDA the peak memory that process allocated: the records then show placement, not just the
    device string a recipe asked for."""
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    out: dict[str, Any] = {"placed": str(device)}
    if hasattr(os, "sched_getaffinity"):
        out["cpus"] = sorted(os.sched_getaffinity(0))  # the cores this process may run on (pinned or all)
    if device.type == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out
