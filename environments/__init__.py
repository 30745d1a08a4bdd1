"""dnilab environments: the world the agents learn from.

Public API (import from ``environments`` only; the modules are private):

- ``make(spec, **kwargs) -> gymnasium.Env``: a registered id (below) or ``"package.module:Class"``.
- ``data_dir() -> Path``: ``$DNILAB_DATA`` or ``~/.cache/dnilab``.
- ``DataUnavailable``: raised when a dataset cannot be found or fetched (says what was tried, how to fix).
- ``load_mnist(root=None)``: ``{"train","valid","test"}`` -> ``(x float32 [N,784] in [0,1], y int64 [N])``,
  50k/10k/10k. ``fetch_mnist(root=None) -> Path``: make sure the ``mnist.npz`` cache exists.
- ``MnistStream`` ("dnilab/MNIST-v0"): labelled MNIST batches; ``info["target"]`` holds the labels.
- ``DigitStream`` ("dnilab/DigitStream-v0"): parallel digit streams with a target every k steps.
- ``Copy`` / ``RepeatCopy`` ("dnilab/Copy-v0", "dnilab/RepeatCopy-v0"): the NTM copy tasks, one time step
  per env step; ``bits_per_sequence`` scores them.
- ``MaskObservation``, ``masked`` ("dnilab/CartPoleNoVel-v1"): an env observing only some components of its
  observation; CartPole-v1 without the velocities (it needs memory).
- ``CharLM`` ("dnilab/CharLM-v0"): character language modelling over Shakespeare (offline default) or
  Penn Treebank; ``load_corpus``, ``load_shakespeare``, ``load_ptb_chars``, ``bits_per_char``;
  ``split_documents`` says which plays (as character spans) a split holds.

Supervised streams: ``reset(seed=...) -> (obs, info)``, obs = input batch float32 ``[B, ...]``,
``info["target"]`` = int64 ``[B]``; ``step(action)`` returns the next batch the same way (action =
predicted labels or ``None``). See each class's docstring for the exact protocol.

To add an environment: put it in its own module, import it and add it to ``__all__`` and ``_IDS``.
"""

from __future__ import annotations

import gymnasium as gym

from .charlm import CharLM
from .copy import LENGTHS, Copy, RepeatCopy, bits_per_sequence
from .data import DataUnavailable, data_dir
from .digits import DigitStream
from .masked import MaskObservation, masked
from .mnist import MnistStream, fetch_mnist, load_mnist
from .registry import make
from .text import bits_per_char, load_corpus, load_ptb_chars, load_shakespeare, split_documents

__all__ = [
    "CharLM",
    "LENGTHS",
    "Copy",
    "DataUnavailable",
    "RepeatCopy",
    "bits_per_char",
    "bits_per_sequence",
    "load_corpus",
    "load_ptb_chars",
    "load_shakespeare",
    "split_documents",
    "DigitStream",
    "MaskObservation",
    "masked",
    "MnistStream",
    "data_dir",
    "fetch_mnist",
    "load_mnist",
    "make",
]

# gymnasium id -> entry point; registered once on import.
_IDS = {
    "dnilab/MNIST-v0": "environments.mnist:MnistStream",
    "dnilab/DigitStream-v0": "environments.digits:DigitStream",
    "dnilab/Copy-v0": "environments.copy:Copy",
    "dnilab/RepeatCopy-v0": "environments.copy:RepeatCopy",
    "dnilab/CharLM-v0": "environments.charlm:CharLM",
    "dnilab/CartPoleNoVel-v1": "environments.masked:masked",
}

for _id, _entry in _IDS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry)
