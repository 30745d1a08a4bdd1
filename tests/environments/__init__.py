"""Tests for the environments package; small fake MNIST data shared by the test modules."""

from __future__ import annotations

import numpy as np


def fake_mnist(n_train: int = 40, n_valid: int = 12, n_test: int = 23, seed: int = 0) -> dict:
    """Tiny splits shaped like ``load_mnist`` output: float32 [N,784] in [0,1], labels i % 10 (int64)."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        x = rng.integers(0, 256, size=(n, 784)).astype(np.float32) / 255.0
        out[split] = (x, (np.arange(n) % 10).astype(np.int64))
    return out
