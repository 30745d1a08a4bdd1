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


def bpc_by_text(run_dir: Path, split: str = "valid") -> dict[str, Any]:
    """Best-validation weights of ``run_dir`` scored on ``split``: overall BPC and BPC per document."""
    import environments

    _, spec, agent, _ = restore_run(run_dir)
    if spec.task != "lm":
        raise RecipeError(f"{run_dir}: env {spec.env_id!r} is not a char LM")
    kwargs = dict(spec.env_kwargs)
    env = environments.make(spec.env_id, **kwargs, batch_size=spec.agent.eval_batch_size, split=split)
    bits = lm_bits(agent, env)  # [B, n - 1]
    pos = target_positions(*env.unwrapped.streams.shape)
    if "text" in kwargs:  # an injected corpus has no documents: one span
        docs = [("text", 0, int(pos.max()) + 1)]
    else:
        docs = environments.split_documents(kwargs.get("corpus", "shakespeare"), split, kwargs.get("root"),
                               kwargs.get("download", True))
    per = []
    for name, start, end in docs:
        inside = (pos >= start) & (pos < end)
        if inside.any():
            per.append({"text": name, "chars": int(inside.sum()), "bpc": float(bits[inside].mean())})
    return {"run": run_dir.name, "split": split, "bpc": float(bits.mean()), "texts": per}


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: one row per text, one column per run (BPC), the whole split last."""
    if len({(r["split"], tuple(t["text"] for t in r["texts"])) for r in results}) > 1:
        raise RecipeError("dnilab bpc: the runs were scored on different texts (another corpus?); compare them apart")
    head = "| text | chars | " + " | ".join(r["run"] for r in results) + " |"
    lines = [head, "|---|---|" + "---|" * len(results)]
    for i, t in enumerate(results[0]["texts"]):
        cells = " | ".join(f"{r['texts'][i]['bpc']:.4f}" for r in results)
        lines.append(f"| {t['text']} | {t['chars']} | {cells} |")
    lines.append(f"| **all of {results[0]['split']}** | {sum(t['chars'] for t in results[0]['texts'])} | "
                 + " | ".join(f"**{r['bpc']:.4f}**" for r in results) + " |")
    return "\n".join(lines)
