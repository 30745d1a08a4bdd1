"""``dnilab bpc``: a finished char-LM run's bits per character on each text (play) of a split.

Why: a split cut by position can hold the end of a play whose start is in the training split next to plays
the model never saw, and models that differ in what they learned (a long truncation window vs many more
updates) can win on one and lose on the other; one number per split hides that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agents import lm_bits

from .checkpointed import restore_run
from .recipe import RecipeError


def target_positions(batch: int, stream_len: int) -> np.ndarray:
    """Split offset of each character a pass predicts, ``[B, stream_len - 1]``, in ``lm_bits``' layout: stream
    b walks characters ``b * stream_len ...`` and predicts each one but its first."""
    return np.arange(batch)[:, None] * stream_len + 1 + np.arange(stream_len - 1)[None, :]


CLASSES = {  # what kind of character is predicted: long context helps some kinds more than others
    "letters, lower case": str.islower,
    "letters, upper case": str.isupper,
    "spaces": lambda c: c == " ",
    "newlines": lambda c: c == "\n",
    "other (punctuation, digits)": lambda c: not (c.isalpha() or c in " \n"),
}


def _class_of(vocab: Any) -> np.ndarray:
    """Class index (into ``CLASSES``) of each id of ``vocab``; ``<unk>`` counts as other."""
    tests = list(CLASSES.values())
    other = len(tests) - 1
    ids = [next((k for k, test in enumerate(tests) if test(c)), other) for c in vocab.chars]
    return np.array(ids + [other] * (len(vocab) - len(ids)))


def bpc_by_text(run_dir: Path, split: str = "valid") -> dict[str, Any]:
    """Best-validation weights of ``run_dir`` scored on ``split``: overall BPC, BPC per document and per kind of
    character predicted."""
    import environments

    _, spec, agent, _ = restore_run(run_dir)
    kwargs = dict(spec.env_kwargs)
    env = environments.make(spec.env_id, **kwargs, batch_size=spec.agent.eval_batch_size, split=split)
    bits = lm_bits(agent, env)  # [B, n - 1]
    pos = target_positions(*env.unwrapped.streams.shape)
    if "text" in kwargs:  # an injected corpus has no documents: one span
        docs = [("text", 0, int(pos.max()) + 1)]
    else:
        docs = environments.split_documents(kwargs.get("corpus", "shakespeare"), split, kwargs.get("root"),
                                            kwargs.get("download", True))
    kind = _class_of(env.unwrapped.vocab)[env.unwrapped.streams[:, 1:]]  # [B, n - 1], as bits

    def scored(parts: list[tuple[str, np.ndarray]]) -> list[dict[str, Any]]:
        return [{"name": name, "chars": int(inside.sum()), "bpc": float(bits[inside].mean())}
                for name, inside in parts if inside.any()]

    return {"run": run_dir.name, "split": split, "chars": int(bits.size), "bpc": float(bits.mean()),
            "texts": scored([(name, (pos >= start) & (pos < end)) for name, start, end in docs]),
            "characters": scored([(name, kind == k) for k, name in enumerate(CLASSES)])}


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: one row per text and per kind of character, one column per run (BPC), the whole split last."""
    rows = [(r["split"], tuple(p["name"] for p in r["texts"] + r["characters"])) for r in results]
    if len(set(rows)) > 1:
        raise RecipeError("dnilab bpc: the runs were scored on different texts (another corpus?); compare them apart")
    lines = ["| text / characters predicted | chars | " + " | ".join(r["run"] for r in results) + " |",
             "|---|---|" + "---|" * len(results)]
    for group in ("texts", "characters"):
        for i, part in enumerate(results[0][group]):
            cells = " | ".join(f"{r[group][i]['bpc']:.4f}" for r in results)
            lines.append(f"| {part['name']} | {part['chars']} | {cells} |")
    lines.append(f"| **all of {results[0]['split']}** | {results[0]['chars']} | "
                 + " | ".join(f"**{r['bpc']:.4f}**" for r in results) + " |")
    return "\n".join(lines)
