"""The agent and edge tables of an RL recipe (``[[agents]]``, ``[[edges]]``), typed on ``agents.config.Strict``.

A policy is a chain ``env -> encoder ... -> actor_critic``, or ``env -> recurrent -> actor_critic``: a slow
recurrent agent that ticks every ``period`` env steps and gives the controller its context (``agents.rl_recurrent``).
Each edge between two agents has a backward mode:

- ``backprop``: the receiver's true dL/dh comes back and the sender waits for it (update-locked);
- ``dni``: the sender updates at once on M(h); M learns from the true dL/dh when it comes back;
- ``cdni``: M(h, c) with a context the *sender* can have: ``action`` (the action taken at that sample, one-hot
  for Discrete, the vector for Box: the environment echoes it) or ``action_return`` (that, and the sample's
  discounted reward-to-go within its rollout, computed by the sender from the rewards the env sends; the
  advantage needs the critic, which the sender does not have);
- ``none``: the sender never learns (a fixed random encoder, the baseline DNI must beat).
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .config import Strict

__all__ = ["RlAgentConfig", "RlEdgeConfig", "RlSynthesizerConfig", "context_dim"]

CONTEXTS = ("none", "action", "action_return")


class RlSynthesizerConfig(Strict):
    """M on an RL edge: ``hidden`` = [] is linear; ``scale`` multiplies the gradient it gives the sender."""

    hidden: list[int] = []
    lr: float = Field(1e-3, gt=0)
    scale: float = Field(1.0, ge=0)
    context: Literal["none", "action", "action_return"] = "none"


class RlEdgeConfig(Strict):
    """``[[edges]]``: ``from`` / ``to`` name agents (or ``env``); ``backward`` is the mode of a policy edge."""

    model_config = ConfigDict(populate_by_name=True)

    sender: str = Field(alias="from", min_length=1)
    to: str = Field(min_length=1)
    backward: Literal["backprop", "dni", "cdni", "none"] = "backprop"
    synthesizer: RlSynthesizerConfig = Field(default_factory=RlSynthesizerConfig, validate_default=True)

    @field_validator("synthesizer")
    @classmethod
    def _context_fits_mode(cls, syn: RlSynthesizerConfig, info: ValidationInfo) -> RlSynthesizerConfig:
        backward = info.data.get("backward")
        if backward == "cdni" and syn.context == "none":
            raise ValueError("a cdni edge needs a context: context = 'action' or 'action_return'")
        if backward != "cdni" and syn.context != "none":
            raise ValueError(f"context {syn.context!r}: only a cdni edge reads a context (this edge is {backward!r})")
        return syn

    @property
    def name(self) -> str:
        return f"{self.sender}->{self.to}"

    @property
    def sends_targets(self) -> bool:
        return self.sender != "env" and self.backward != "none"


class RlAgentConfig(Strict):
    """``[[agents]]``: an ``encoder`` (tanh MLP stage), a ``recurrent`` slow agent (a GRU of width ``hidden[0]``
    that ticks every ``period`` env steps on the observations since its last tick), or the ``actor_critic`` head
    (the rest of the towers). ``lr`` None takes ``ppo.lr``; either is annealed as ``ppo.anneal_lr`` says."""

    name: str = Field(min_length=1)
    kind: Literal["encoder", "recurrent", "actor_critic"]
    hidden: list[int] = [64]
    lr: float | None = Field(None, gt=0)
    period: int = Field(1, ge=1, description="recurrent: env steps between two ticks")

    @model_validator(mode="after")
    def _widths(self) -> RlAgentConfig:
        if self.name == "env":
            raise ValueError("name: 'env' is the environment's name")
        if self.kind == "encoder" and not self.hidden:
            raise ValueError("hidden: an encoder needs at least one layer")
        if any(w < 1 for w in self.hidden):
            raise ValueError(f"hidden: widths must be >= 1, got {self.hidden}")
        if self.kind == "recurrent" and len(self.hidden) != 1:
            raise ValueError(f"hidden: a recurrent agent has one width (its state), got {self.hidden}")
        if self.kind != "recurrent" and self.period != 1:
            raise ValueError(f"period: only a recurrent agent ticks slower than the env (this one is {self.kind!r})")
        return self


def context_dim(context: str, action_dim: int) -> int:
    """Width of M's context row for ``context``."""
    return {"none": 0, "action": action_dim, "action_return": action_dim + 1}[context]
