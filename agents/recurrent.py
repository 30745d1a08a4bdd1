"""Recurrent core with truncated BPTT and a synthetic gradient at every truncation boundary (DNI, Sect. 3.1).

Why: truncated BPTT over windows of T steps cannot credit anything further back than T steps. DNI keeps
the windows but lets a model M(state) ~ dL_future/dstate stand in for the gradient from beyond the
window's end, so the LSTM can learn dependencies longer than T.

One training window k (state s = concat(h, c), S = 2H; B sequences):

1. ``s_start`` = the previous window's final state, detached and made a leaf that requires grad;
2. unroll T steps -> ``s_end``; task loss L_k over the window;
3. backward of ``L_k + <s_end, g>`` with ``g = sg_scale * M(s_end) / B`` (detached; none at episode end);
   update the core;
4. ``s_start.grad * B`` is M's bootstrapped target for the previous boundary: the true gradient of this
   window's loss plus this window's own end-of-window synthetic gradient carried back through it. Train M
   on it with L2 (own Adam). M works at per-sample scale (target x B, applied / B) like
   ``interfaces.SyntheticGradient``. With ``sg_scale`` = γ < 1, M learns a γ-discounted sum of future
   gradients (γ = 1: the exact bootstrap).

Two ways of making M learn signal rather than noise (on the char LM the best linear M explains ~0.1-0.2 %
of its target's energy while the Adam M's output, all noise, is half the target's size: ``dnilab probe``):
``sg_average = β`` > 0 applies (and carries back into M's targets) an exponential moving average of M's
weights, like a target network; ``sg_fit = "ridge"`` refits M in closed form every window. Both made the char
LM worse in session 12 (docs/RESULTS-recurrent.md): a steadier M is one the core can exploit. Off by default.

``sg_state = "h"``: s above is h alone, not (h, c). On an endless stream (char LM) a linear term <c, M(s)>
rewards growing the unbounded cell state c along -M without limit, and with forget gates near 1 c's
boundary target becomes M's own output, so nothing anchors M: the run diverges. h is bounded by tanh.

DNI + Aux (``aux = true``): an extra linear head A(h_t) on every step t of the window is trained (L2,
weight ``aux_weight``) to predict the synthetic gradient M(s_end) of the window's own end boundary, i.e.
the SG 1..T steps ahead; its gradient shapes the core (an auxiliary task, as in the paper's DNI + Aux, in
the within-window form: the paper's exact horizon was not checked). Target is zero at episode end.

``sg = "none"`` is the plain truncated-BPTT baseline (same agent, no M). Tasks: Copy / Repeat Copy with a
length curriculum (``max_length``), character LM (valid / test bits per character with early stopping on
validation). Entry points: ``run_recurrent`` and ``validate_recurrent``.
"""

from __future__ import annotations

import copy
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from interfaces import Synthesizer, adam, agreement

from .curriculum import Curriculum, CurriculumConfig

__all__ = [
    "LSTMCore",
    "RecurrentAgent",
    "RecurrentConfig",
    "RecurrentRecipe",
    "TBPTTLearner",
    "checkpoint",
    "restore",
    "run_recurrent",
    "validate_recurrent",
]

_LN2 = math.log(2.0)
State = tuple[Tensor, ...]  # each [B, ...]; concatenated along the last axis for M

# Env ids this agent knows: task kind and the env kwargs a recipe may set (batch_size/split are the agent's).
KNOWN_ENVS: dict[str, tuple[str, frozenset[str]]] = {
    "dnilab/Copy-v0": ("copy", frozenset({"length", "bits", "lengths"})),
    "dnilab/RepeatCopy-v0": ("copy", frozenset({"length", "repeats", "bits", "repeat_norm", "lengths"})),
    "dnilab/CharLM-v0": ("lm", frozenset({"corpus", "root", "text", "download"})),
}
# [run] keys the runtime may carry that this agent ignores.
RUNTIME_RUN_KEYS = frozenset(
    {"name", "description", "notes", "tags", "out", "out_dir", "timeout_s", "threads", "seconds",
     "launcher", "transport", "window", "capacity", "metrics_every", "address", "keys", "pace"}
)


# ------------------------------------------------------------------------------------------- config


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check(ok: bool, key: str, what: str, v: Any) -> None:
    if not ok:
        raise ValueError(f"{key}: must be {what}, got {v!r}")


def _no_unknown(d: dict[str, Any], known: set[str] | frozenset[str], section: str) -> None:
    for k in d:
        if k not in known:
            raise ValueError(f"{section}.{k}: unknown key (known: {', '.join(sorted(known))})")


@dataclass
class RecurrentConfig:
    """The ``[agent]`` recipe section."""

    hidden: int = 256  # LSTM units (paper: 256 for Copy/Repeat Copy, 1024 for PTB)
    window: int = 3  # truncation window T (steps per BPTT segment)
    sg: str = "dni"  # "dni": synthetic gradient at each boundary; "none": truncated BPTT baseline
    aux: bool = False  # DNI + Aux (needs sg = "dni")
    aux_weight: float = 1.0
    lr: float = 1e-3  # Adam, core + readout (+ aux head)
    sg_lr: float = 1e-3  # Adam, M
    sg_scale: float = 1.0  # multiplies M's output where it is applied (γ above)
    sg_average: float = 0.0  # > 0: apply an exponential moving average of M's weights (this decay), not M itself
    sg_fit: str = "adam"  # how M learns: "adam" steps (sg_lr), or "ridge": refit in closed form every window
    sg_ridge: float = 0.1  # "ridge": the penalty per row (λ n |W|², bias free)
    sg_memory: float = 0.999  # "ridge": each window's rows weigh this much less per later window
    sg_hidden: list[int] = field(default_factory=list)  # M's hidden layers; [] = linear (the paper's)
    sg_state: str = "hc"  # the boundary state M reads and predicts the gradient of: "hc" = (h, c); "h" = h only
    batch_size: int = 64  # sequences (Copy) or parallel streams (char LM)
    clip: float = 10.0  # global grad-norm clip of the core's update; 0 = off
    eval_batch_size: int = 32  # char LM: streams when evaluating valid/test

    @classmethod
    def from_dict(cls, d: dict[str, Any], section: str = "agent") -> RecurrentConfig:
        """Checked construction: ValueError naming ``section.key`` for unknown keys or bad values."""
        if not isinstance(d, dict):
            raise ValueError(f"{section}: must be a table, got {type(d).__name__}")
        _no_unknown(d, {f.name for f in fields(cls)}, section)
        for k, v in d.items():
            key = f"{section}.{k}"
            if k in ("hidden", "window", "batch_size", "eval_batch_size"):
                _check(_is_int(v) and v >= 1, key, "an int >= 1", v)
            elif k in ("lr", "sg_lr"):
                _check(_is_num(v) and v > 0, key, "a number > 0", v)
            elif k in ("sg_scale", "aux_weight", "clip"):
                _check(_is_num(v) and v >= 0, key, "a number >= 0", v)
            elif k in ("sg_average", "sg_memory"):
                _check(_is_num(v) and 0 <= v < 1, key, "a number in [0, 1)", v)
            elif k == "sg_ridge":
                _check(_is_num(v) and v > 0, key, "a number > 0", v)
            elif k == "sg_fit":
                _check(v in ("adam", "ridge"), key, "'adam' or 'ridge'", v)
            elif k == "sg":
                _check(v in ("dni", "none"), key, "'dni' or 'none'", v)
            elif k == "sg_state":
                _check(v in ("hc", "h"), key, "'hc' or 'h'", v)
            elif k == "aux":
                _check(isinstance(v, bool), key, "true or false", v)
            elif k == "sg_hidden":
                _check(
                    isinstance(v, list) and all(_is_int(u) and u >= 1 for u in v),
                    key,
                    "a list of ints >= 1",
                    v,
                )
        cfg = cls(**{k: (list(v) if isinstance(v, list) else v) for k, v in d.items()})
        if cfg.aux and cfg.sg != "dni":
            raise ValueError(f"{section}.aux: needs {section}.sg = 'dni' (Aux predicts synthetic gradients)")
        if cfg.sg_fit == "ridge" and (cfg.sg_hidden or cfg.sg_average > 0):
            raise ValueError(f"{section}.sg_fit: 'ridge' fits a linear M (no sg_hidden) and applies it (no sg_average)")
        for k in ("lr", "sg_lr", "sg_scale", "sg_average", "sg_ridge", "sg_memory", "aux_weight", "clip"):
            setattr(cfg, k, float(getattr(cfg, k)))
        return cfg


@dataclass
class RunConfig:
    """The ``[run]`` section keys this agent uses."""

    steps: int  # training windows (= core updates); a Copy episode of length L takes ceil(L / T) windows
    seed: int = 0
    log_every: int = 50  # windows between report() calls
    eval_every: int = 0  # char LM: windows between validation passes (0 = only at the end)
    eval_chars: int = 0  # char LM: cap on characters per valid/test pass (0 = the whole split)


@dataclass
class RecurrentRecipe:
    """A checked recurrent recipe."""

    run: RunConfig
    env_id: str
    env_kwargs: dict[str, Any]
    task: str  # "copy" | "lm"
    agent: RecurrentConfig
    curriculum: CurriculumConfig


def parse_recipe(recipe: dict[str, Any]) -> RecurrentRecipe:
    """Check the whole recipe; ValueError naming the bad key. Starts nothing."""
    if not isinstance(recipe, dict):
        raise ValueError(f"recipe: must be a table, got {type(recipe).__name__}")
    _no_unknown(recipe, {"run", "env", "agent", "curriculum"}, "recipe")
    run = recipe.get("run")
    if not isinstance(run, dict):
        raise ValueError("run: missing [run] table")
    _no_unknown(
        run,
        {"kind", "steps", "seed", "log_every", "eval_every", "eval_chars", "device"} | RUNTIME_RUN_KEYS,
        "run",
    )
    _check(run.get("kind") == "recurrent", "run.kind", "'recurrent'", run.get("kind"))
    _check("steps" in run, "run.steps", "given (training windows)", None)
    for k, lo in (("steps", 1), ("seed", 0), ("log_every", 1), ("eval_every", 0), ("eval_chars", 0)):
        if k in run:
            _check(_is_int(run[k]) and run[k] >= lo, f"run.{k}", f"an int >= {lo}", run[k])
    run_cfg = RunConfig(
        **{k: run[k] for k in ("steps", "seed", "log_every", "eval_every", "eval_chars") if k in run}
    )

    env = recipe.get("env")
    if not isinstance(env, dict):
        raise ValueError("env: missing [env] table")
    _no_unknown(env, {"id", "kwargs", "task"}, "env")
    env_id = env.get("id")
    _check(isinstance(env_id, str) and bool(env_id), "env.id", "a non-empty string", env_id)
    kwargs = env.get("kwargs", {})
    _check(isinstance(kwargs, dict), "env.kwargs", "a table", kwargs)
    for k in ("batch_size", "split"):
        if k in kwargs:
            raise ValueError(
                f"env.kwargs.{k}: set by the agent (use agent.batch_size / the run's eval), remove it"
            )
    known = KNOWN_ENVS.get(env_id)
    task = env.get("task", known[0] if known else None)
    _check(
        task in ("copy", "lm"),
        "env.task",
        "'copy' or 'lm' (required for env ids this agent does not know)",
        task,
    )
    if known is not None:
        _no_unknown(kwargs, known[1], "env.kwargs")

    agent = RecurrentConfig.from_dict(recipe.get("agent", {}))
    if "curriculum" in recipe and task != "copy":
        raise ValueError("curriculum: only for copy tasks (Copy / Repeat Copy)")
    cur = CurriculumConfig.from_dict(recipe.get("curriculum", {}))
    return RecurrentRecipe(run_cfg, env_id, dict(kwargs), task, agent, cur)


def validate_recurrent(recipe: dict[str, Any]) -> None:
    """Raise ValueError naming the bad key; starts nothing (no env, no data, no torch modules)."""
    parse_recipe(recipe)


# ------------------------------------------------------------------------------------------ modules


class LSTMCore(nn.Module):
    """One LSTM layer run over a whole window at once; state = (h, c), each [B, H]."""

    def __init__(self, n_in: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.lstm = nn.LSTM(n_in, hidden)
        self.state_size = 2 * hidden
        self.out_size = hidden

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        z = torch.zeros(batch, self.hidden, device=device)
        return (z, z.clone())

    def forward(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """x [T, B, n_in], state ([B, H], [B, H]) -> outputs [T, B, H], final state."""
        out, (h, c) = self.lstm(x, (state[0].unsqueeze(0), state[1].unsqueeze(0)))
        return out, (h[0], c[0])


def copy_loss(logits: Tensor, target: Tensor, mask: Tensor, norm: float) -> Tensor:
    """Sum over masked steps and bits of BCE (nats) / norm. logits, target [T, B, n]; mask [T, B]."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)  # [T, B]
    return (bce * mask).sum() / norm


def char_nats(logits: Tensor, target: Tensor) -> Tensor:
    """Next-char cross-entropy (nats) of every step, [T, B]. logits [T, B, V]; target [T, B]."""
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
    return ce.reshape(target.shape)


def lm_loss(logits: Tensor, target: Tensor, mask: Tensor, norm: float) -> Tensor:
    """Sum over masked steps of next-char CE (nats) / norm. logits [T, B, V]; target, mask [T, B]."""
    return (char_nats(logits, target) * mask).sum() / norm


def ridge_solve(gram: Tensor, cross: Tensor, penalty: float) -> Tensor:
    """W [D + 1, O] = argmin |X W - Y|² + penalty |W[:-1]|² from gram = XᵀX and cross = XᵀY, where X's last
    column is ones (the bias, not penalised)."""
    reg = torch.eye(len(gram), dtype=gram.dtype, device=gram.device) * penalty
    reg[-1, -1] = 0.0
    return torch.linalg.solve(gram + reg, cross)


class TBPTTLearner:
    """Truncated BPTT over windows, with an optional synthetic gradient M(s) at each window boundary.

    Core-agnostic: ``core(x [T, B, ...], state) -> (out [T, B, D], state)``, ``core.init_state(B)``;
    ``readout(out) -> logits``; ``loss_fn(logits, target, mask, norm)`` sums over steps (so window losses
    add up to the sequence loss) and is divided by ``norm = B * window``.
    """

    def __init__(
        self,
        core: nn.Module,
        readout: nn.Module,
        loss_fn: Callable[[Tensor, Tensor, Tensor, float], Tensor],
        cfg: RecurrentConfig,
        state_size: int,
        out_size: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.core, self.readout, self.loss_fn, self.cfg = core, readout, loss_fn, cfg
        self.device = torch.device(device)
        self.sg: Synthesizer | None = None
        self.aux: nn.Linear | None = None
        params = list(core.parameters()) + list(readout.parameters())
        # "h": M sees and drives only the first state tensor (an LSTM's h, of the core's output size)
        self.sg_parts = slice(0, 1) if cfg.sg_state == "h" else slice(None)
        sg_size = out_size if cfg.sg_state == "h" else state_size
        self.sg_applied: Synthesizer | None = None  # the M whose output is applied and carried back
        if cfg.sg == "dni":
            self.sg = Synthesizer(in_shape=(sg_size,), hidden=tuple(cfg.sg_hidden)).to(self.device)
            self.sg_opt = adam(self.sg.parameters(), lr=cfg.sg_lr)
            self.sg_applied = copy.deepcopy(self.sg).requires_grad_(False) if cfg.sg_average > 0 else self.sg
            if cfg.sg_fit == "ridge":  # decayed sums of [s, 1]ᵀ[s, 1] and [s, 1]ᵀ target, and of the row count
                self.gram = torch.zeros(sg_size + 1, sg_size + 1, dtype=torch.float64, device=self.device)
                self.cross = torch.zeros(sg_size + 1, sg_size, dtype=torch.float64, device=self.device)
                self.rows = 0.0
            if cfg.aux:
                self.aux = nn.Linear(out_size, sg_size).to(self.device)  # h_t [D] -> predicted SG [S]
                params += list(self.aux.parameters())
        self.params = params
        self.opt = adam(params, lr=cfg.lr)
        self.state: State | None = None
        self.pending: Tensor | None = None  # [B, S] state at the last boundary, awaiting its target
        self.last_target: Tensor | None = None  # [B, S] the last bootstrapped target (per-sample scale)

    def start_episode(self, batch: int) -> None:
        """Zero state; nothing pending (the first window of an episode has no previous boundary)."""
        self.state = self.core.init_state(batch, self.device)
        self.pending = None

    def train_window(
        self, x: Tensor, target: Tensor, mask: Tensor, done: bool
    ) -> tuple[dict[str, float], Tensor]:
        """One window: update the core (and M for the previous boundary). Returns metrics, detached logits."""
        assert self.state is not None, "call start_episode() first"
        b = x.shape[1]
        s0 = tuple(s.detach().requires_grad_(True) for s in self.state)  # leaves: their grad is the target
        out, s_end = self.core(x, s0)  # out [T, B, D]
        logits = self.readout(out)
        loss = self.loss_fn(logits, target, mask, float(b * self.cfg.window))
        total = loss
        metrics: dict[str, float] = {"loss": float(loss.detach())}
        metrics["state_norm"] = float(torch.cat(s_end, dim=-1).detach().norm(dim=-1).mean())
        s_vec = torch.cat(s_end[self.sg_parts], dim=-1)  # [B, S]: the part of the state M reads and drives
        s0_grads: tuple[Tensor | None, ...] | None = None
        if self.sg_applied is not None:
            with torch.no_grad():  # M's prediction at the end boundary; the future is empty at episode end
                m_end = torch.zeros_like(s_vec) if done else self.sg_applied(s_vec.detach())  # [B, S] per-sample
            metrics["sg_applied_norm"] = float(m_end.norm(dim=-1).mean()) * self.cfg.sg_scale
            if not done:
                total = total + (s_vec * m_end).sum() * (self.cfg.sg_scale / b)
            if self.aux is not None:
                if self.pending is not None:  # M's target excludes the aux loss: task loss + SG only
                    s0_grads = torch.autograd.grad(total, s0, retain_graph=True, allow_unused=True)
                pred = self.aux(out)  # [T, B, S]
                aux_loss = F.mse_loss(pred, m_end.unsqueeze(0).expand_as(pred))
                total = total + self.cfg.aux_weight * aux_loss
                metrics["aux_loss"] = float(aux_loss.detach())
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        if self.cfg.clip > 0:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.clip))
        self.opt.step()
        if self.sg is not None and self.pending is not None:
            grads = s0_grads if s0_grads is not None else tuple(s.grad for s in s0)
            parts = zip(grads[self.sg_parts], s0[self.sg_parts])
            delta = torch.cat([g if g is not None else torch.zeros_like(s) for g, s in parts], dim=-1) * b
            self.last_target = delta.detach()
            metrics.update(self._learn_sg(self.pending, self.last_target))
        self.pending = s_vec.detach() if (self.sg is not None and not done) else None
        self.state = tuple(s.detach() for s in s_end)
        return metrics, logits.detach()

    @torch.no_grad()
    def _refit_ridge(self, s: Tensor, target: Tensor) -> None:
        """``sg_fit = "ridge"``: M <- the ridge least-squares map over every boundary so far, older windows
        decayed by ``sg_memory``: the closed form does not follow the target's noise as Adam steps do."""
        assert self.sg is not None
        xb = torch.cat([s, torch.ones_like(s[:, :1])], dim=1).double()  # [B, S + 1]
        rho = self.cfg.sg_memory
        self.gram.mul_(rho).add_(xb.T @ xb)
        self.cross.mul_(rho).add_(xb.T @ target.double())
        self.rows = rho * self.rows + len(s)
        w = ridge_solve(self.gram, self.cross, self.cfg.sg_ridge * self.rows)  # [S + 1, S]
        last = self.sg.net[-1]
        last.weight.copy_(w[:-1].T)
        last.bias.copy_(w[-1])

    def _learn_sg(self, s: Tensor, target: Tensor) -> dict[str, float]:
        """L2 step of M(s) toward the bootstrapped target; quality measured before the step.

        With ``sg_average`` the applied M, an exponential moving average of M's weights, is updated after
        the step and scored before it (``sg_applied_cosine``)."""
        assert self.sg is not None and self.sg_applied is not None
        pred = self.sg(s)  # [B, S]
        loss = F.mse_loss(pred, target)
        if self.cfg.sg_fit == "ridge":
            self._refit_ridge(s, target)
        else:
            self.sg_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.sg_opt.step()
        cos, ratio = agreement(pred, target)
        out = {"sg_loss": float(loss.detach()), "sg_cosine": cos}
        if float(target.norm()) > 0:
            out["sg_norm_ratio"] = ratio
        if self.sg_applied is not self.sg:
            with torch.no_grad():
                cos, ratio = agreement(self.sg_applied(s), target)  # the applied M, before this step's update
                for avg, p in zip(self.sg_applied.parameters(), self.sg.parameters(), strict=True):
                    avg.lerp_(p, 1.0 - self.cfg.sg_average)
                for avg, b in zip(self.sg_applied.buffers(), self.sg.buffers(), strict=True):
                    avg.copy_(b)
            out["sg_applied_cosine"] = cos
            if float(target.norm()) > 0:
                out["sg_applied_norm_ratio"] = ratio
        return out


# -------------------------------------------------------------------------------------- env driving


class _Stream:
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


# --------------------------------------------------------------------------------------------- runs


Report = Callable[[int, dict[str, Any]], None]
MakeEnv = Callable[..., Any]
Save = Callable[[dict[str, Any]], None]


def _default_make_env(env_id: str, **kwargs: Any) -> Any:
    """gymnasium.make for an id registered in this process (importing ``environments`` registers ours)."""
    import gymnasium as gym

    if env_id not in gym.registry:
        raise ValueError(
            f"env.id: {env_id!r} is not registered in this process; import environments first "
            "(it registers the dnilab ids) or pass make_env=environments.make"
        )
    return gym.make(env_id, disable_env_checker=True, **kwargs)


class _Means:
    """Means of scalar metrics since the last report."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            if math.isfinite(v):
                self.sums[k] += float(v)
                self.counts[k] += 1

    def pop(self) -> dict[str, float]:
        out = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums.clear()
        self.counts.clear()
        return out


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


def _build(task: str, env: Any, cfg: RecurrentConfig, device: torch.device) -> RecurrentAgent:
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


def _setup(spec: RecurrentRecipe, make: MakeEnv, device: str) -> tuple[Any, RecurrentAgent]:
    """The training env (the char LM's train split) and an agent built for it."""
    kwargs = {**spec.env_kwargs, "batch_size": spec.agent.batch_size}
    if spec.task == "lm":
        kwargs["split"] = "train"
    env = make(spec.env_id, **kwargs)
    return env, _build(spec.task, env, spec.agent, torch.device(device))


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
    reads its placement for the records). ``save(state)`` receives a checkpoint (see ``checkpoint``) at
    the end of the run, also a stopped one, and for the char LM after every validation. Returns
    ``{"max_length": int, ...}`` for copy tasks or ``{"valid_bpc": float, "test_bpc": float, ...}`` for the
    char LM (test at the best-validation weights).
    """
    spec = parse_recipe(recipe)
    make = make_env or _default_make_env
    torch.manual_seed(spec.run.seed)
    env, agent = _setup(spec, make, device)
    if on_built is not None:
        on_built(agent.core)
    if spec.task == "copy":
        return _run_copy(spec, env, agent, report, should_stop, save)
    return _run_lm(spec, env, agent, report, should_stop, make, save)


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
    spec = parse_recipe(state["recipe"])
    env, agent = _setup(spec, make_env or _default_make_env, device)
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
    cur = Curriculum(spec.curriculum, repeat=repeat)
    stream = _Stream(env)

    def new_episode(seed: int | None = None) -> None:
        opts = {"length": cur.length, **({"repeats": cur.repeats} if repeat else {})}
        stream.reset(seed=seed, options=opts)
        agent.learner.start_episode(cfg.batch_size)

    new_episode(run.seed)
    means, ep_bits, ep_out, episodes, step, t0 = _Means(), 0.0, 0.0, 0, 0, time.time()
    last_reported = 0
    while step < run.steps and not should_stop():
        x, y, m, done = stream.window(cfg.window)
        metrics, _ = agent.learner.train_window(agent.x(x), agent.y(y), agent.m(m), done)
        step += 1
        ep_bits += metrics["loss"] * cfg.window / _LN2  # loss = Σ BCE / (B T) -> bits per sequence
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


def _copy_report(means: _Means, cur: Curriculum, repeat: bool, episodes: int, rate: float) -> dict[str, Any]:
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


def _lm_pass(agent: RecurrentAgent, env: Any, window: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """(logits [t, B, V], targets [t, B], mask [t, B]) window by window over one pass of env's split, the
    state carried across windows."""
    stream = _Stream(env)
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
    return nats / max(count, 1.0) / _LN2


@torch.no_grad()
def lm_bits(agent: RecurrentAgent, env: Any, window: int = 200) -> np.ndarray:
    """Bits of every predicted character of one pass over env's split, ``[B, steps]``: row b is stream b in
    text order, so a caller can tell which part of the text a model does well or badly on."""
    rows = [char_nats(logits, target) for logits, target, _ in _lm_pass(agent, env, window)]  # [t, B] nats each
    return (torch.cat(rows).T / _LN2).cpu().numpy()


def _run_lm(
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

    stream = _Stream(env)
    stream.reset(seed=run.seed)
    agent.learner.start_episode(cfg.batch_size)
    means, nats, chars, step, t0 = _Means(), 0.0, 0.0, 0, time.time()
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
                {**means.pop(), "train_bpc": nats / max(chars, 1.0) / _LN2, "windows_per_s": rate, **extra},
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
