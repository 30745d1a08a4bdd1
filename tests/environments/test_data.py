"""data.py: the cache folder, checksum verification, atomic writes and verified fetching (no network)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from environments import data_dir
from environments.data import ChecksumError, atomic_writer, fetch_file, verify_bytes


def test_data_dir_env_and_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DNILAB_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.delenv("DNILAB_DATA")
    assert data_dir() == Path.home() / ".cache" / "dnilab"


def test_verify_bytes() -> None:
    blob = b"hello"
    verify_bytes(blob, sha256=hashlib.sha256(blob).hexdigest(), md5=hashlib.md5(blob).hexdigest())
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        verify_bytes(blob, sha256="0" * 64)
    with pytest.raises(ChecksumError, match="md5 mismatch"):
        verify_bytes(blob, md5="0" * 32)


def test_atomic_writer_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.bin"
    with atomic_writer(target) as f:
        f.write(b"ok")
    assert target.read_bytes() == b"ok"
    with pytest.raises(RuntimeError), atomic_writer(target) as f:
        f.write(b"partial")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"ok"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_fetch_file_verifies_and_falls_back(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    digest = hashlib.sha256(b"payload").hexdigest()
    dest = tmp_path / "cache" / "dest.bin"
    missing = (tmp_path / "missing.bin").as_uri()
    assert fetch_file([missing, src.as_uri()], dest, sha256=digest) == dest
    assert dest.read_bytes() == b"payload"
    src.unlink()  # a verified existing file is reused without touching the URLs
    assert fetch_file([missing], dest, sha256=digest) == dest


def test_fetch_file_rejects_bad_checksum(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"tampered")
    dest = tmp_path / "dest.bin"
    with pytest.raises(OSError, match="sha256 mismatch") as err:
        fetch_file([src.as_uri()], dest, sha256="0" * 64)
    assert src.as_uri() in str(err.value)
    assert not dest.exists()
