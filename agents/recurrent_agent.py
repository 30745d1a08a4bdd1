"""The recurrent agent's parts around its learner (``agents.tbptt``): the LSTM core and readout built for an
environment, the stream of time-step windows it trains on, and its checkpoint (``checkpoint`` / ``restore``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .recurrent_config import RecurrentConfig, RecurrentRecipe, agent_recipe, parse_recipe
from .tbptt import LSTMCore, TBPTTLearner, copy_loss, lm_loss

__all__ = ["LN2", "MakeEnv", "RecurrentAgent", "WindowStream", "build_agent", "checkpoint", "default_make_env",
           "restore", "setup_agent"]

LN2 = math.log(2.0)
MakeEnv = Callable[..., Any]


class WindowStream:
    """Serves windows of time steps from an env whose reset/step return one time step (obs, info) each."""

    def __init__(self, env: Any) -> None:
        self.env = env
        space = env.action_space
        self.action = np.zeros(space.shape, dtype=space.dtype)  # ignored by our envs
        self.obs: Any = None
        self.info: dict[str, Any] = {}
        self.is_last = False  # the current (not yet consumed) step is the episode's last

    def reset(self, **kwargs: Any) -> None:
        self.obs, self.info = self.env.reset(**kwargs)
        self.is_last = False

    def window(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """Up to t steps: inputs [t', B, ...], targets [t', B, ...], masks [t', B]; done = episode over."""
        xs, ys, ms = [], [], []
        done = False
        while len(xs) < t:
            xs.append(np.asarray(self.obs))
            ys.append(np.asarray(self.info["target"]))
            b = xs[-1].shape[0]
            ms.append(np.broadcast_to(np.asarray(self.info.get("mask", True), dtype=bool), (b,)))
            if self.is_last:
                done = True
                break
            self.obs, _, term, trunc, self.info = self.env.step(self.action)
            self.is_last = bool(term or trunc)
        return np.stack(xs), np.stack(ys), np.stack(ms), done



def default_make_env(env_id: str, **kwargs: Any) -> Any:
    """gymnasium.make for an id registered in this process (importing ``environments`` registers ours)."""
    import gymnasium as gym

    if env_id not in gym.registry:
        raise ValueError(
            f"env.id: {env_id!r} is not registered in this process; import environments first "
            "(it registers the dnilab ids) or pass make_env=environments.make"
        )
    return gym.make(env_id, disable_env_checker=True, **kwargs)



@dataclass
class RecurrentAgent:
    """The core, its readout and learner, and how raw env arrays become tensors."""

    core: LSTMCore
    readout: nn.Module
    learner: TBPTTLearner
    vocab: int  # 0 for Copy tasks (float inputs), else V (one-hot char inputs)
    device: torch.device

    def x(self, a: np.ndarray) -> Tensor:  # [T, B, n_in] float or [T, B] ids -> [T, B, n_in]
        t = torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
        return F.one_hot(t.long(), self.vocab).float() if self.vocab else t.float()

    def y(self, a: np.ndarray) -> Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
        return t.long() if self.vocab else t.float()

    def m(self, a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(self.device).float()


def build_agent(task: str, env: Any, cfg: RecurrentConfig, device: torch.device) -> RecurrentAgent:
    """The agent for ``env``: inputs and outputs sized from its spaces."""
    if task == "lm":
        v = int(np.asarray(env.action_space.nvec).flat[0])
        n_in, n_out, loss_fn = v, v, lm_loss
    else:
        v = 0
        n_in, n_out, loss_fn = (
            int(env.observation_space.shape[-1]),
            int(env.action_space.shape[-1]),
            copy_loss,
        )
    core = LSTMCore(n_in, cfg.hidden).to(device)
    readout = nn.Linear(cfg.hidden, n_out).to(device)
    learner = TBPTTLearner(core, readout, loss_fn, cfg, core.state_size, core.out_size, device)
    return RecurrentAgent(core, readout, learner, v, device)


def setup_agent(spec: RecurrentRecipe, make: MakeEnv, device: str) -> tuple[Any, RecurrentAgent]:
    """The training env (the char LM's train split) and an agent built for it."""
    kwargs = {**spec.env_kwargs, "batch_size": spec.agent.batch_size}
    if spec.task == "lm":
        kwargs["split"] = "train"
    env = make(spec.env_id, **kwargs)
    return env, build_agent(spec.task, env, spec.agent, torch.device(device))



def checkpoint(agent: RecurrentAgent, step: int, weights: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """What a recurrent run keeps: the core and readout that were evaluated (``weights``, default the
    current ones), M and the optimizers' current states, so a finished run can be probed (a ridge M's
    running sums are not kept: its weights are)."""
    learner = agent.learner
    weights = weights or {"core": agent.core.state_dict(), "readout": agent.readout.state_dict()}
    return {
        "step": step,
        **weights,
        "optimizer": learner.opt.state_dict(),
        "sg": learner.sg.state_dict() if learner.sg is not None else None,
        # the applied M only where it is not M itself (sg_average > 0)
        "sg_applied": learner.sg_applied.state_dict() if learner.sg_applied is not learner.sg else None,
        "sg_optimizer": learner.sg_opt.state_dict() if learner.sg is not None else None,
        "aux": learner.aux.state_dict() if learner.aux is not None else None,
        **extra,
    }


def restore(
    state: dict[str, Any], make_env: MakeEnv | None = None, device: str = "cpu"
) -> tuple[RecurrentRecipe, RecurrentAgent, Any]:
    """Rebuild a checkpointed agent (evaluated core and readout, M, optimizers) with its training env, so a
    finished run can be probed. ``state`` is what a run saved: ``checkpoint(...)`` plus its ``recipe``."""
    spec = parse_recipe(agent_recipe(state["recipe"]))  # older checkpoints hold the whole [run]
    env, agent = setup_agent(spec, make_env or default_make_env, device)
    learner = agent.learner
    agent.core.load_state_dict(state["core"])
    agent.readout.load_state_dict(state["readout"])
    learner.opt.load_state_dict(state["optimizer"])
    if learner.sg is not None:
        learner.sg.load_state_dict(state["sg"])
        learner.sg_opt.load_state_dict(state["sg_optimizer"])
        if learner.sg_applied is not learner.sg:
            learner.sg_applied.load_state_dict(state["sg_applied"])
    if learner.aux is not None:
        learner.aux.load_state_dict(state["aux"])
    return spec, agent, env

