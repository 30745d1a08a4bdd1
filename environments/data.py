"""Where datasets live and how files get there safely.

Shared by every data-backed environment: one cache folder (``data_dir()``), one error type that tells
the user what was tried and how to fix it (``DataUnavailable``), and checksum-verified, atomic file
fetching so that an interrupted or tampered download never ends up looking like a valid cache file.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "ChecksumError",
    "DataUnavailable",
    "atomic_writer",
    "data_dir",
    "fetch_file",
    "note",
    "verify_bytes",
]

USER_AGENT = "dnilab-data/0.1 (+https://pypi.org/project/dnilab)"


class DataUnavailable(RuntimeError):
    """A dataset could not be found or fetched; the message lists each source tried and how to fix it."""


class ChecksumError(ValueError):
    """Downloaded or cached bytes do not match the expected digest (never trust, never unpickle them)."""


def data_dir() -> Path:
    """The dataset cache: ``$DNILAB_DATA`` if set, else ``~/.cache/dnilab`` (not created here)."""
    env = os.environ.get("DNILAB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dnilab"


def note(message: str) -> None:
    """A short progress line on stderr (stdout stays clean for CLIs that print results)."""
    print(f"[dnilab data] {message}", file=sys.stderr, flush=True)


def verify_bytes(
    data: bytes, *, sha256: str | None = None, md5: str | None = None, what: str = "data"
) -> None:
    """Raise ``ChecksumError`` unless ``data`` matches every digest given."""
    for algo, expected in (("sha256", sha256), ("md5", md5)):
        if expected is None:
            continue
        got = hashlib.new(algo, data).hexdigest()
        if got != expected.lower():
            raise ChecksumError(f"{what}: {algo} mismatch (expected {expected}, got {got})")


def file_digest(path: Path, algo: str = "sha256") -> str:
    """Hex digest of a file, read in chunks (wheels and archives can be large)."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Write via a temporary sibling + ``os.replace``: readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a cache should look like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch_file(
    urls: Sequence[str],
    dest: Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    timeout: float = 20.0,
) -> Path:
    """Make ``dest`` exist with the expected digest, downloading from the first URL that works.

    An existing ``dest`` that verifies is reused (offline re-runs); one that does not is re-fetched.
    Raises ``OSError`` naming every URL tried and its error.
    """
    dest = Path(dest)
    if dest.exists():
        try:
            verify_bytes(dest.read_bytes(), sha256=sha256, md5=md5, what=str(dest))
            return dest
        except ChecksumError as e:
            note(f"{e}; fetching again")
    errors: list[str] = []
    for url in urls:
        try:
            note(f"downloading {url}")
            req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                data = resp.read()
            verify_bytes(data, sha256=sha256, md5=md5, what=url)
            with atomic_writer(dest) as f:
                f.write(data)
            return dest
        except (OSError, ValueError) as e:  # URLError, timeouts and ChecksumError included
            errors.append(f"{url}: {e}")
    raise OSError(f"could not fetch {dest.name}: " + "; ".join(errors or ["no URL given"]))
