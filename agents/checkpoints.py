"""Where an agent's checkpoint lives in a run folder, and how it and every other record file is written: whole
or not at all (``atomic_writer``), one mechanism for every agent kind and for ``runs.records``.

(``environments`` keeps its own copy for its data cache: it imports no other package of ours.)"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import torch

__all__ = ["atomic_writer", "checkpoint_path", "write_checkpoint"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[BinaryIO]:
    """Write via a temporary sibling + ``os.replace``: readers see the old file or the whole new one, and a run
    killed mid-write keeps the previous file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a record should look like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def checkpoint_path(run_dir: str | Path, agent: str) -> Path:
    """``<run_dir>/checkpoints/<agent>.pt``."""
    return Path(run_dir) / "checkpoints" / f"{agent}.pt"


def write_checkpoint(run_dir: str | Path, agent: str, state: dict[str, Any]) -> None:
    """Save ``state`` as the agent's checkpoint, atomically."""
    with atomic_writer(checkpoint_path(run_dir, agent)) as f:
        torch.save(state, f)
