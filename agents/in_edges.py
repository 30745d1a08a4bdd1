"""A feed-forward agent's input edges (one, or several: fan-in): what arrives on each, which steps are
complete, and the parts of one step's input, in edge order.

Per in-edge, what a step needs:

- from the environment: its ``input(x, s)`` (the whole batch, or the edge's part);
- ``forward = "real"``: the sender's ``act(h, s)`` (forward-locked);
- ``forward = "synthetic"``: only the environment's x for ``s``; the real h is used if it is here (and the
  edge prefers it), else I(x). Every real h that arrives trains that edge's I.

A step is ready when every in-edge has what it needs. The parts are merged by the agent (``agents.merge``)
and dL/dx is split back per edge; credits go back per forward-locked edge. With one in-edge this is exactly
the single-edge agent's bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from interfaces import StepBuffer, SyntheticInput

from .graph import ENV, EdgeSpec, Graph

__all__ = ["InEdges", "Taken"]


@dataclass
class Taken:
    """One step's input, taken out of the stores."""

    parts: list[Tensor]               # per in-edge (edge order), on the agent's device
    real: list[bool]                  # per in-edge: the real input (False: I(x))
    credits: list[tuple[str, str, list[int]]]  # (sender, edge, steps): credits to return (skipped steps too)
    skipped: int                      # older steps dropped to take this one


class InEdges:
    """The stores of every in-edge of agent ``name``, and the synthetic input model I of each synthetic one."""

    def __init__(self, name: str, graph: Graph, ack_inputs: bool = False) -> None:
        self.name = name
        self.edges: list[EdgeSpec] = graph.in_edges(name)
        self.env_edge = graph.env_edge(name)
        self.env_name = f"{ENV}->{name}"
        self.synthetic = [e for e in self.edges if e.forward == "synthetic"]
        self.unlocked = all(e.forward == "synthetic" for e in self.edges)  # waits for no sender at all
        self.reads_env = self.env_edge is not None or bool(self.synthetic)  # needs the env's x for each step
        # pace "all": a reader of x without an edge from the environment returns the environment's credit
        self.ack_inputs = ack_inputs and bool(self.synthetic) and self.env_edge is None
        # free-running: a step done on I(x) is trained again on its real h when that arrives later (docs/RESULTS-dni.md)
        self.late_real = (self.unlocked and not self.ack_inputs
                          and any(e.late_real and e.prefer_real for e in self.synthetic))
        self.env_shape = graph.env_view(name)  # what arrives on env->name
        self.shapes = [graph.edge_shape(e) for e in self.edges]

    def start(self, capacity: int, device: torch.device) -> None:
        """Build the stores and each synthetic edge's I (after the agent's seed is set)."""
        self.device = device
        self.inputs = StepBuffer(capacity)  # x from the environment
        self.acts = {e.name: StepBuffer(capacity) for e in self.edges if e.sender != ENV}  # real activations
        self.si: dict[str, SyntheticInput] = {}
        self.si_pairs: dict[str, StepBuffer] = {}  # real h waiting to train I (newest first)
        for e, shape in zip(self.edges, self.shapes):
            if e.forward != "synthetic":
                continue
            cfg = dict(e.input_synthesizer)
            self.si[e.name] = SyntheticInput(self.env_shape, shape, hidden=tuple(cfg.get("hidden", ())),
                                             lr=cfg.get("lr", 1e-4), capacity=cfg.get("capacity", capacity),
                                             device=device)
            self.si_pairs[e.name] = StepBuffer(capacity)

    # -- receiving ------------------------------------------------------------------------------
    def file_input(self, step: int, x: Tensor) -> None:
        self.inputs.put(step, x)
        for si in self.si.values():
            si.remember(step, x)

    def file_act(self, edge: str, step: int, h: Tensor, last_step: int) -> None:
        if edge in self.si:  # I learns from the real h that arrive, used or not (see learn_si)
            self.si_pairs[edge].put(step, h)
        if step > last_step:
            self.acts[edge].put(step, h)

    # -- which step -----------------------------------------------------------------------------
    def _needs(self) -> list[StepBuffer]:
        """The store each in-edge's step needs something from (the env's x once for all)."""
        needs = [self.inputs] if self.reads_env else []
        return needs + [self.acts[e.name] for e in self.edges if e.sender != ENV and e.forward == "real"]

    def ready(self, last_step: int) -> list[int]:
        """Steps newer than ``last_step`` that every in-edge has its input for."""
        stores = self._needs()
        first, rest = stores[0], stores[1:]
        return [s for s in first.steps() if s > last_step and all(s in other for other in rest)]

    def has_real(self, step: int) -> bool:
        """Whether a real h of ``step`` is here on any edge that prefers it."""
        return any(step in self.acts[e.name] for e in self.synthetic if e.prefer_real)

    def all_real(self) -> list[int]:
        """Steps of any age whose real h is here on every edge from another agent (oldest first)."""
        stores = [self.acts[e.name] for e in self.edges if e.sender != ENV]
        if not stores:
            return []
        return [s for s in stores[0].steps() if all(s in other for other in stores[1:])]

    def pick(self, ready: list[int]) -> int:
        """The step to train: every step in order when any edge is forward-locked (or the environment paces
        on this agent); forward-unlocked, never wait: the newest step with the most real h that the edges
        prefer, else the newest through I(x)."""
        if not self.unlocked or self.ack_inputs:
            return min(ready)
        prefer = [e.name for e in self.synthetic if e.prefer_real]
        return max(ready, key=lambda s: (sum(s in self.acts[e] for e in prefer), s))

    # -- taking a step --------------------------------------------------------------------------
    def take(self, step: int) -> Taken:
        """Pop step ``step``'s parts (I(x) where a synthetic edge's h is not here) and drop older steps."""
        dev = self.device
        x_env = self.inputs.pop(step) if self.reads_env else None  # None: a late step, every h real
        x_env = x_env.to(dev) if x_env is not None else None
        parts: list[Tensor] = []
        real: list[bool] = []
        for e in self.edges:
            if e.sender == ENV:
                parts.append(x_env)
                real.append(True)
                continue
            h = self.acts[e.name].pop(step)
            if h is None:  # only on a synthetic edge: ready() waited for every forward-locked one
                parts.append(self.si[e.name].predict(step, x_env))
            else:
                parts.append(h.to(dev))
            real.append(h is not None)
        credits: list[tuple[str, str, list[int]]] = []
        skipped: set[int] = set()
        older_inputs = self._drop_older(self.inputs, step) if self.reads_env else []
        skipped.update(older_inputs)
        for e in self.edges:
            if e.sender == ENV:
                credits.append((ENV, e.name, [*older_inputs, step]))
            elif e.forward == "real":
                older = self._drop_older(self.acts[e.name], step)
                skipped.update(older)
                credits.append((e.sender, e.name, [*older, step]))
        if self.ack_inputs:
            credits.append((ENV, self.env_name, [*older_inputs, step]))
        return Taken(parts, real, credits, len(skipped))

    @staticmethod
    def _drop_older(store: StepBuffer, step: int) -> list[int]:
        older = [s for s in store.steps() if s < step]
        for s in older:
            store.pop(s)
        return older

    def learn_si(self) -> dict[str, dict[str, float]]:
        """Train each synthetic edge's I on its newest (x, real h) pair: one per tick, so a fast sender cannot
        swamp this agent. Returns the stats per edge trained."""
        out: dict[str, dict[str, float]] = {}
        for edge, pairs in self.si_pairs.items():
            if not len(pairs):
                continue
            step = max(pairs.steps())
            stats = self.si[edge].learn(step, pairs.pop(step).to(self.device))
            out[edge] = stats or {}
        return out

    # -- records --------------------------------------------------------------------------------
    def dropped(self) -> int:
        return self.inputs.dropped + sum(a.dropped for a in self.acts.values())

    def stored(self) -> int:
        return len(self.inputs) + sum(len(a) for a in self.acts.values())

    def state(self) -> dict[str, dict]:
        return {"synthetic_inputs": {k: v.module.state_dict() for k, v in self.si.items()},
                "synthetic_input_optimizers": {k: v.optimizer.state_dict() for k, v in self.si.items()}}

    def restore(self, state: dict[str, dict]) -> None:
        for name, si in self.si.items():
            si.module.load_state_dict(state["synthetic_inputs"][name])
            si.optimizer.load_state_dict(state["synthetic_input_optimizers"][name])
