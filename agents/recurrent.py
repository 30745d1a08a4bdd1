"""The recurrent agent's runs: ``run_recurrent`` trains an LSTM with truncated BPTT and (optionally)
synthetic gradients at the window boundaries (``agents.tbptt``) on a Copy / Repeat Copy task with a length
curriculum (here), or as a character language model (``agents.recurrent_lm``), reporting as it goes and
saving checkpoints (``agents.recurrent_agent``). Its recipe: ``agents.recurrent_config``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .curriculum import Curriculum
from .recurrent_agent import LN2, MakeEnv, RecurrentAgent, WindowStream, checkpoint, default_make_env, setup_agent
from .recurrent_config import RecurrentRecipe, parse_recipe
from .recurrent_lm import Report, Save, run_lm
from .training import RunningMeans

__all__ = ["run_recurrent"]


def run_recurrent(
    recipe: dict[str, Any],
    report: Report,
    should_stop: Callable[[], bool],
    device: str = "cpu",
    make_env: MakeEnv | None = None,
    on_built: Callable[[nn.Module], None] | None = None,
    save: Save | None = None,
) -> dict[str, Any]:
    """Train per the recipe; report(step, metrics) every ``run.log_every`` windows; poll should_stop().

    ``make_env(id, **kwargs)`` builds envs (default: gymnasium.make of a registered id; the runtime can
    pass ``environments.make``). ``on_built(core)`` sees the LSTM core once it is on its device (the node
    reads its placement for the records). ``save(state)`` receives a ``checkpoint`` (``agents.recurrent_agent``) at
    the end of the run, also a stopped one, and for the char LM after every validation. Returns
    ``{"max_length": int, ...}`` for copy tasks or ``{"valid_bpc": float, "test_bpc": float, ...}`` for the
    char LM (test at the best-validation weights).
    """
    spec = parse_recipe(recipe)
    make = make_env or default_make_env
    torch.manual_seed(spec.run.seed)
    env, agent = setup_agent(spec, make, device)
    if on_built is not None:
        on_built(agent.core)
    if spec.task == "copy":
        return _run_copy(spec, env, agent, report, should_stop, save)
    return run_lm(spec, env, agent, report, should_stop, make, save)


def _run_copy(
    spec: RecurrentRecipe,
    env: Any,
    agent: RecurrentAgent,
    report: Report,
    should_stop: Callable[[], bool],
    save: Save | None,
):
    cfg, run = spec.agent, spec.run
    repeat = hasattr(env.unwrapped, "set_repeats")
    cur = Curriculum(spec.curriculum, repeat=repeat)  # a copy recipe always has one (RecurrentRecipe)
    stream = WindowStream(env)

    def new_episode(seed: int | None = None) -> None:
        opts = {"length": cur.length, **({"repeats": cur.repeats} if repeat else {})}
        stream.reset(seed=seed, options=opts)
        agent.learner.start_episode(cfg.batch_size)

    new_episode(run.seed)
    means, ep_bits, ep_out, episodes, step, t0 = RunningMeans(skip_nonfinite=True), 0.0, 0.0, 0, 0, time.time()
    last_reported = 0
    while step < run.steps and not should_stop():
        x, y, m, done = stream.window(cfg.window)
        metrics, _ = agent.learner.train_window(agent.x(x), agent.y(y), agent.m(m), done)
        step += 1
        ep_bits += metrics["loss"] * cfg.window / LN2  # loss = Σ BCE / (B T) -> bits per sequence
        ep_out += float(m.sum()) / m.shape[1]  # output steps per sequence (lengths differ within a batch)
        means.add(metrics)
        if done:
            means.add({"bits_per_seq": ep_bits, "bits_per_step": ep_bits / max(ep_out, 1)})
            cur.update(ep_bits, ep_out)
            episodes += 1
            ep_bits, ep_out = 0.0, 0.0
            new_episode()
        if step % run.log_every == 0:
            report(step, _copy_report(means, cur, repeat, episodes, step / (time.time() - t0)))
            last_reported = step
    if step > last_reported:
        report(step, _copy_report(means, cur, repeat, episodes, step / max(time.time() - t0, 1e-9)))
    out: dict[str, Any] = {"max_length": cur.max_length, "final_length": cur.length, "episodes": episodes}
    if repeat:
        out["final_repeats"] = cur.repeats
    if save is not None:
        save(checkpoint(agent, step, **out))
    return out


def _copy_report(means: RunningMeans, cur: Curriculum, repeat: bool, episodes: int, rate: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        **means.pop(),
        "length": cur.length,
        "max_length": cur.max_length,
        "episodes": episodes,
        "windows_per_s": rate,
    }
    if repeat:
        out["repeats"] = cur.repeats
    if cur.mean_error is not None:
        out["curriculum_error"] = cur.mean_error
    return out

