"""The character language model: a run with validation-based early stopping (``run_lm``), bits per character
of a split (``evaluate_lm``), and of every character in text order (``lm_bits``)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .recurrent_agent import LN2, MakeEnv, RecurrentAgent, WindowStream, checkpoint
from .recurrent_config import RecurrentRecipe
from .tbptt import char_nats, lm_loss
from .training import RunningMeans

__all__ = ["evaluate_lm", "lm_bits", "run_lm"]

Report = Callable[[int, dict[str, Any]], None]
Save = Callable[[dict[str, Any]], None]


def _lm_pass(agent: RecurrentAgent, env: Any, window: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """(logits [t, B, V], targets [t, B], mask [t, B]) window by window over one pass of env's split, the
    state carried across windows."""
    stream = WindowStream(env)
    stream.reset()
    state = agent.core.init_state(
        env.unwrapped.batch_size
        if hasattr(env.unwrapped, "batch_size")
        else int(env.observation_space.shape[0]),
        agent.device,
    )
    while True:
        x, y, m, done = stream.window(window)
        out, state = agent.core(agent.x(x), state)
        yield agent.readout(out), agent.y(y), agent.m(m)
        if done:
            return


@torch.no_grad()
def evaluate_lm(agent: RecurrentAgent, env: Any, max_chars: int = 0, window: int = 200) -> float:
    """Bits per character of one pass over env's split (or its first ``max_chars`` characters)."""
    nats, count = 0.0, 0.0
    for logits, target, mask in _lm_pass(agent, env, window):
        nats += float(lm_loss(logits, target, mask, 1.0))
        count += float(mask.sum())
        if max_chars and count >= max_chars:
            break
    return nats / max(count, 1.0) / LN2


@torch.no_grad()
def lm_bits(agent: RecurrentAgent, env: Any, window: int = 200) -> np.ndarray:
    """Bits of every predicted character of one pass over env's split, ``[B, steps]``: row b is stream b in
    text order, so a caller can tell which part of the text a model does well or badly on."""
    rows = [char_nats(logits, target) for logits, target, _ in _lm_pass(agent, env, window)]  # [t, B] nats each
    return (torch.cat(rows).T / LN2).cpu().numpy()


def run_lm(
    spec: RecurrentRecipe,
    env: Any,
    agent: RecurrentAgent,
    report: Report,
    should_stop: Callable[[], bool],
    make: MakeEnv,
    save: Save | None,
) -> dict[str, Any]:
    cfg, run = spec.agent, spec.run
    eval_kwargs = {**spec.env_kwargs, "batch_size": cfg.eval_batch_size}
    envs: dict[str, Any] = {}

    def evaluate(split: str) -> float:
        if split not in envs:
            envs[split] = make(spec.env_id, **eval_kwargs, split=split)
        return evaluate_lm(agent, envs[split], run.eval_chars)

    stream = WindowStream(env)
    stream.reset(seed=run.seed)
    agent.learner.start_episode(cfg.batch_size)
    means, nats, chars, step, t0 = RunningMeans(skip_nonfinite=True), 0.0, 0.0, 0, time.time()
    best: tuple[float, dict[str, Any]] | None = None
    last_eval = last_reported = 0

    def validate() -> float:
        nonlocal best, last_eval
        v = evaluate("valid")
        last_eval = step
        if best is None or v < best[0]:
            snap = {
                "core": copy.deepcopy(agent.core.state_dict()),
                "readout": copy.deepcopy(agent.readout.state_dict()),
            }
            best = (v, snap)
        if save is not None:
            save(checkpoint(agent, step, best[1], best_valid_bpc=best[0]))
        return v

    while step < run.steps and not should_stop():
        x, y, m, done = stream.window(cfg.window)
        metrics, _ = agent.learner.train_window(agent.x(x), agent.y(y), agent.m(m), done)
        step += 1
        nats += metrics["loss"] * cfg.batch_size * cfg.window  # loss = Σ CE / (B T)
        chars += float(m.sum())
        means.add(metrics)
        if done:
            stream.reset()
            agent.learner.start_episode(cfg.batch_size)
        extra: dict[str, Any] = {}
        if run.eval_every and step % run.eval_every == 0:
            extra["valid_bpc"] = validate()
        if step % run.log_every == 0 or extra:
            rate = step / max(time.time() - t0, 1e-9)
            report(
                step,
                {**means.pop(), "train_bpc": nats / max(chars, 1.0) / LN2, "windows_per_s": rate, **extra},
            )
            nats, chars, last_reported = 0.0, 0.0, step
    if best is None or last_eval != step:
        v = validate()
        report(step, {**means.pop(), "valid_bpc": v})
    elif step > last_reported:
        report(step, means.pop())
    assert best is not None
    agent.core.load_state_dict(best[1]["core"])
    agent.readout.load_state_dict(best[1]["readout"])
    test = evaluate("test")
    report(step, {"test_bpc": test, "best_valid_bpc": best[0]})
    if save is not None:
        save(checkpoint(agent, step, best[1], best_valid_bpc=best[0], test_bpc=test))
    return {"valid_bpc": best[0], "test_bpc": test}
