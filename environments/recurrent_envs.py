"""Registers the recurrent-task environments with gymnasium (importing this module is enough).

Why separate: lets ``environments/__init__.py`` pick them up with one import, or tests and tools use them
before that line exists. Ids: ``dnilab/Copy-v0``, ``dnilab/RepeatCopy-v0``, ``dnilab/CharLM-v0``.
"""

from __future__ import annotations

import gymnasium as gym

from .charlm import CharLM
from .copy import Copy, RepeatCopy, bits_per_sequence
from .text import Vocab, bits_per_char, load_corpus, load_ptb_chars, load_shakespeare, parse_ptb_chars

__all__ = [
    "IDS",
    "CharLM",
    "Copy",
    "RepeatCopy",
    "Vocab",
    "bits_per_char",
    "bits_per_sequence",
    "load_corpus",
    "load_ptb_chars",
    "load_shakespeare",
    "parse_ptb_chars",
    "register",
]

IDS = {
    "dnilab/Copy-v0": "environments.copy:Copy",
    "dnilab/RepeatCopy-v0": "environments.copy:RepeatCopy",
    "dnilab/CharLM-v0": "environments.charlm:CharLM",
}


def register() -> None:
    """Register the ids once (idempotent)."""
    for env_id, entry in IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry)


register()
