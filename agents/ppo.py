"""PPO pieces shared by the split actor-critic (encoder and head agents) and the single-process reference.

CleanRL's ``ppo.py`` (and ``ppo_continuous_action.py`` for Box actions) is the reference: tanh MLPs with
orthogonal initialisation (gain sqrt(2), policy output 0.01, value output 1), GAE(lambda), the clipped
surrogate with a clipped value loss, an entropy bonus, per-minibatch advantage normalisation, gradient-norm
clipping and a linearly annealed learning rate. The hyper-parameters are ``PpoConfig``.

The network is CleanRL's, cut after its first ``len(encoder hidden)`` layers: with ``towers = 2`` (CleanRL's
separate actor and critic) the encoder computes both towers' first layers side by side (features
``[B, 2 * width]``: actor half, then critic half) and the head the rest of each tower; with ``towers = 1`` one
shared torso feeds both outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from .config import Strict

__all__ = ["ActorCritic", "PolicyEncoder", "PpoConfig", "explained_variance", "gae", "layer_init", "minibatch_order",
           "ppo_loss", "tanh_mlp"]


class PpoConfig(Strict):
    """``[ppo]``: CleanRL's defaults for CartPole."""

    num_steps: int = Field(128, ge=1, description="env steps per environment copy per rollout")
    lr: float = Field(2.5e-4, gt=0)
    anneal_lr: bool = True
    gamma: float = Field(0.99, ge=0, le=1)
    gae_lambda: float = Field(0.95, ge=0, le=1)
    num_minibatches: int = Field(4, ge=1)
    update_epochs: int = Field(4, ge=1)
    norm_adv: bool = True
    clip_coef: float = Field(0.2, gt=0)
    clip_vloss: bool = True
    ent_coef: float = Field(0.01, ge=0)
    vf_coef: float = Field(0.5, ge=0)
    max_grad_norm: float = Field(0.5, gt=0)
    towers: Literal[1, 2] = 2

    def lr_at(self, rollout: int, rollouts: int) -> float:
        """CleanRL's annealing: rollout r (0-based) of R trains at lr * (1 - r / R)."""
        return self.lr * (1.0 - rollout / rollouts) if self.anneal_lr else self.lr

    def minibatches(self, batch: int) -> int:
        return batch // self.num_minibatches


def layer_init(layer: nn.Linear, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def tanh_mlp(widths: Sequence[int], out: int | None = None, out_std: float = 1.0) -> nn.Sequential:
    """Linear-tanh layers through ``widths`` (the first is the input width), then an optional linear output."""
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [layer_init(nn.Linear(a, b)), nn.Tanh()]
    if out is not None:
        layers.append(layer_init(nn.Linear(widths[-1], out), std=out_std))
    return nn.Sequential(*layers)


class PolicyEncoder(nn.Module):
    """The first layers of the actor and critic towers (``towers = 2``) or of one shared torso. ``split``: the
    input is a previous encoder's features, tower i reading its i-th part (the towers stay separate)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], towers: int = 2, split: bool = False) -> None:
        super().__init__()
        if split and in_dim % towers:
            raise ValueError(f"features of width {in_dim} cannot be split into {towers} towers")
        width = in_dim // towers if split else in_dim
        self.towers = nn.ModuleList(tanh_mlp([width, *hidden]) for _ in range(towers))
        self.split = split
        self.out_dim = hidden[-1] * towers

    def forward(self, x: Tensor) -> Tensor:  # [B, in] -> [B, towers * hidden[-1]]
        parts = x.chunk(len(self.towers), dim=1) if self.split else [x] * len(self.towers)
        return torch.cat([t(p) for t, p in zip(self.towers, parts)], dim=1)


class ActorCritic(nn.Module):
    """The rest of the towers and the outputs: logits (Discrete) or a Gaussian mean and log std (Box), and V."""

    def __init__(self, in_dim: int, hidden: Sequence[int], action_dim: int, continuous: bool, towers: int = 2) -> None:
        super().__init__()
        if in_dim % towers:
            raise ValueError(f"features of width {in_dim} cannot be split into {towers} towers")
        width = in_dim // towers
        self.towers = towers
        self.continuous = continuous
        self.actor = tanh_mlp([width, *hidden], action_dim, out_std=0.01)
        self.critic = tanh_mlp([width, *hidden], 1, out_std=1.0)
        self.logstd = nn.Parameter(torch.zeros(1, action_dim)) if continuous else None

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """h [B, F] -> (policy output [B, A], value [B])."""
        a_in, c_in = h.chunk(2, dim=1) if self.towers == 2 else (h, h)
        return self.actor(a_in), self.critic(c_in).squeeze(1)

    def dist(self, out: Tensor) -> torch.distributions.Distribution:
        if self.continuous:
            return torch.distributions.Normal(out, self.logstd.expand_as(out).exp())
        return torch.distributions.Categorical(logits=out)

    def log_prob_entropy(self, out: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        d = self.dist(out)
        if self.continuous:
            return d.log_prob(action).sum(1), d.entropy().sum(1)
        return d.log_prob(action), d.entropy()

    def act(self, h: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """(action, its log-probability, value) for features h; the mode of the policy when deterministic."""
        out, value = self(h)
        if deterministic:
            action = out if self.continuous else out.argmax(1)
        else:
            action = self.dist(out).sample()
        logp, _ = self.log_prob_entropy(out, action)
        return action, logp, value


def gae(rewards: Tensor, values: Tensor, dones: Tensor, next_value: Tensor, gamma: float,
        lam: float) -> tuple[Tensor, Tensor]:
    """Advantages and returns [T, N]. ``dones[t]``: step t ended its episode (terminated or truncated, as
    CleanRL counts it), so neither the value nor the advantage of step t + 1 flows back into step t."""
    steps = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(steps)):
        nxt = next_value if t == steps - 1 else values[t + 1]
        live = 1.0 - dones[t]
        delta = rewards[t] + gamma * nxt * live - values[t]
        last = delta + gamma * lam * live * last
        adv[t] = last
    return adv, adv + values


def minibatch_order(seed: int, rollout: int, epochs: int, batch: int, size: int) -> list[Tensor]:
    """Every minibatch's sample indices of one rollout's update, epoch after epoch (CleanRL's shuffles)."""
    out = []
    for epoch in range(epochs):
        g = torch.Generator().manual_seed((seed * 1_000_003 + rollout * 1009 + epoch) % 2**62)
        perm = torch.randperm(batch, generator=g)
        out += [perm[i:i + size] for i in range(0, batch - size + 1, size)]
    return out


def ppo_loss(net: ActorCritic, h: Tensor, actions: Tensor, old_logp: Tensor, adv: Tensor, returns: Tensor,
             old_values: Tensor, cfg: PpoConfig) -> tuple[Tensor, dict[str, float]]:
    """CleanRL's loss on one minibatch of features h [B, F]; returns (loss, statistics)."""
    out, value = net(h)
    logp, entropy = net.log_prob_entropy(out, actions)
    logratio = logp - old_logp
    ratio = logratio.exp()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfrac = ((ratio - 1.0).abs() > cfg.clip_coef).float().mean()
    if cfg.norm_adv and len(adv) > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
    if cfg.clip_vloss:
        v_clipped = old_values + (value - old_values).clamp(-cfg.clip_coef, cfg.clip_coef)
        v_loss = 0.5 * torch.max((value - returns) ** 2, (v_clipped - returns) ** 2).mean()
    else:
        v_loss = 0.5 * ((value - returns) ** 2).mean()
    ent = entropy.mean()
    loss = pg_loss - cfg.ent_coef * ent + cfg.vf_coef * v_loss
    stats = {"pg_loss": float(pg_loss.detach()), "v_loss": float(v_loss.detach()), "entropy": float(ent.detach()),
             "approx_kl": float(approx_kl), "clipfrac": float(clipfrac)}
    return loss, stats


def explained_variance(values: Tensor, returns: Tensor) -> float:
    y, p = returns.flatten().numpy(), values.flatten().numpy()
    var = np.var(y)
    return float("nan") if var == 0 else float(1 - np.var(y - p) / var)
