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

Two ways of steadying M, both off by default (``dnilab probe`` measures how much of its target any M could
predict): ``sg_average = β`` > 0 applies (and carries back into M's targets) an exponential moving average
of M's weights, like a target network; ``sg_fit = "ridge"`` refits M in closed form every window.

``sg_state = "h"``: s above is h alone, not (h, c). On an endless stream (char LM) a linear term <c, M(s)>
rewards growing the unbounded cell state c along -M without limit, and with forget gates near 1 c's
boundary target becomes M's own output, so nothing anchors M: the run diverges. h is bounded by tanh.

DNI + Aux (``aux = true``): an extra linear head A(h_t) on every step t of the window is trained (L2,
weight ``aux_weight``) to predict the synthetic gradient M(s_end) of the window's own end boundary, i.e.
the SG 1..T steps ahead; its gradient shapes the core (an auxiliary task, as in the paper's DNI + Aux, in
the within-window form: the paper's exact horizon was not checked). Target is zero at episode end.

``sg = "none"`` is the plain truncated-BPTT baseline (same learner, no M).

Controls (``sg_control``), to tell a gain that comes from M's predictions from one that any perturbation of this
size at the boundary would give: ``"noise"`` applies Gaussian noise with each sequence's norm of M(s_end) instead
of M(s_end), ``"shuffle"`` applies M's outputs permuted across the batch (right size and distribution, wrong
sequence). M still learns from its targets as usual; those targets carry back what was applied.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from interfaces import Synthesizer, adam, agreement

from .recurrent_config import RecurrentConfig

__all__ = ["LSTMCore", "State", "TBPTTLearner", "char_nats", "copy_loss", "lm_loss", "ridge_solve"]

State = tuple[Tensor, ...]  # each [B, ...]; concatenated along the last axis for M


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


def control(m: Tensor, kind: str) -> Tensor:
    """What is applied in M's place: M's output [B, S] itself, noise of each row's norm, or the rows permuted."""
    if kind == "noise":
        noise = torch.randn_like(m)
        return noise * (m.norm(dim=-1, keepdim=True) / noise.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    if kind == "shuffle":
        return m[torch.randperm(m.shape[0], device=m.device)]
    return m


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
                m_end = control(m_end, self.cfg.sg_control)
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

