"""The system's topology: agents, the edges between them and their modes, resolved from a recipe.

Everything here is plain data so it can be handed to a spawned process (or a Ray actor) as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from interfaces import SG_TARGETS

from .blocks import build_module, is_head
from .optim import build_optimizer

BACKWARD_MODES = ("backprop", "dni", "cdni", "none")
FORWARD_MODES = ("real", "synthetic")
ENV = "env"  # the environment node's name; edges from it carry the input batch


@dataclass
class EdgeSpec:
    """A directed edge ``sender -> receiver`` carrying activations forward and gradients (or targets) back."""

    sender: str
    receiver: str
    backward: str = "backprop"
    forward: str = "real"
    synthesizer: dict[str, Any] = field(default_factory=dict)        # M: hidden, lr, capacity, scale
    input_synthesizer: dict[str, Any] = field(default_factory=dict)  # I: hidden, lr, capacity
    prefer_real: bool = True   # synthetic forward: use a real h that already arrived (False: always I(x))
    late_real: bool = False    # synthetic forward: train on a real h that arrives after its step was done on I(x)

    @property
    def name(self) -> str:
        return f"{self.sender}->{self.receiver}"

    @property
    def sg_target(self) -> str:
        """What M on this edge learns from: 'bootstrap' (the receiver's own M carried back) or 'delayed'
        (the true gradient, sent back by the receiver when the targets for its own output are back).
        Default: 'delayed' for label-free `dni` edges (bootstrapped targets compound into an M that is
        uncorrelated with the true gradient two layers from the head: docs/RESULTS-dni.md), 'bootstrap' for
        `cdni`, whose label-conditioned linear M composes well on bootstrapped targets."""
        return self.synthesizer.get("target", "delayed" if self.backward == "dni" else "bootstrap")

    @property
    def sends_targets(self) -> bool:
        """Whether the receiver sends gradient targets back over this edge."""
        return self.sender != ENV and self.backward != "none"


@dataclass
class AgentSpec:
    """One agent: its module, optimizer and pace knobs. Shapes are per sample, filled in by ``resolve``."""

    name: str
    module: dict[str, Any]
    optimizer: dict[str, Any] = field(default_factory=lambda: {"name": "adam", "lr": 1e-3})
    update_prob: float = 1.0
    slowdown: float = 1.0
    stage_ms: float = 0.0      # simulated device time per forward and per backward (benchmarks)
    factory: str = "agents:FeedForwardAgent"  # the node class, "package.module:Class" (plug in your own)
    device: str = "cpu"
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    head: bool = False


@dataclass
class Graph:
    agents: list[AgentSpec]
    edges: list[EdgeSpec]
    input_shape: tuple[int, ...]   # per-sample shape of the environment's input batch
    classes: int = 10

    def agent(self, name: str) -> AgentSpec:
        return next(a for a in self.agents if a.name == name)

    def in_edge(self, name: str) -> EdgeSpec:
        return next(e for e in self.edges if e.receiver == name)

    def out_edges(self, name: str) -> list[EdgeSpec]:
        return [e for e in self.edges if e.sender == name]

    def heads(self) -> list[str]:
        return [a.name for a in self.agents if a.head]

    def needs_labels(self, name: str) -> bool:
        """Heads need labels for the loss; cDNI senders need them as the synthesizer's context."""
        return self.agent(name).head or any(e.backward == "cdni" for e in self.out_edges(name))

    def order(self) -> list[str]:
        """Agents from the environment outwards (each agent has exactly one input edge)."""
        done: list[str] = []
        frontier = [ENV]
        while frontier:
            node = frontier.pop(0)
            for e in self.out_edges(node):
                done.append(e.receiver)
                frontier.append(e.receiver)
        return done


def validate_topology(graph: Graph) -> None:
    """Check the graph is a tree rooted at the environment; errors name the offending agent or edge."""
    names = [a.name for a in graph.agents]
    if len(set(names)) != len(names):
        raise ValueError(f"agents: duplicate agent names in {names}")
    if ENV in names:
        raise ValueError(f"agents: {ENV!r} is reserved for the environment")
    known = set(names) | {ENV}
    for e in graph.edges:
        for end in (e.sender, e.receiver):
            if end not in known:
                raise ValueError(f"edges.{e.name}: unknown agent {end!r}")
        if e.backward not in BACKWARD_MODES:
            raise ValueError(f"edges.{e.name}.backward: expected one of {BACKWARD_MODES}, got {e.backward!r}")
        if e.forward not in FORWARD_MODES:
            raise ValueError(f"edges.{e.name}.forward: expected one of {FORWARD_MODES}, got {e.forward!r}")
        if e.sg_target not in SG_TARGETS:
            raise ValueError(f"edges.{e.name}.synthesizer.target: expected one of {SG_TARGETS}, got {e.sg_target!r}")
        if e.sender == ENV and e.forward != "real":
            raise ValueError(f"edges.{e.name}.forward: edges from the environment are always 'real'")
    for name in names:
        ins = [e for e in graph.edges if e.receiver == name]
        if len(ins) != 1:
            raise ValueError(f"agents.{name}: needs exactly one input edge, has {len(ins)}")
    reached = set(graph.order())
    missing = set(names) - reached
    if missing:
        raise ValueError(f"agents: {sorted(missing)} not reachable from the environment (cycle?)")
    for a in graph.agents:
        if not 0.0 < a.update_prob <= 1.0:
            raise ValueError(f"agents.{a.name}.update_prob: must be in (0, 1], got {a.update_prob}")
        if a.slowdown < 1.0:
            raise ValueError(f"agents.{a.name}.slowdown: must be >= 1 (a factor), got {a.slowdown}")


def resolve(graph: Graph) -> Graph:
    """Validate the topology and fill in each agent's per-sample shapes by a dry forward pass."""
    validate_topology(graph)
    shapes: dict[str, tuple[int, ...]] = {ENV: graph.input_shape}
    for name in graph.order():
        spec = graph.agent(name)
        spec.in_shape = shapes[graph.in_edge(name).sender]
        module = build_module(spec.module)
        module.eval()
        try:
            with torch.no_grad():
                out = module(torch.zeros(2, *spec.in_shape))
        except RuntimeError as err:
            raise ValueError(f"agents.{name}.module: does not accept input of shape {list(spec.in_shape)} "
                             f"(from {graph.in_edge(name).sender!r}): {err}") from None
        try:
            build_optimizer(spec.optimizer, module.parameters())
        except ValueError as err:
            raise ValueError(f"agents.{name}.{err}") from None
        spec.out_shape = tuple(out.shape[1:])
        spec.head = is_head(module)
        shapes[name] = spec.out_shape
        if spec.head and graph.out_edges(name):
            raise ValueError(f"agents.{name}: a head cannot have output edges")
        if not spec.head and not graph.out_edges(name):
            raise ValueError(f"agents.{name}: has no output edge and is not a head")
    return graph


def store_capacity(requested: int, graph: Graph, window: int) -> int:
    """Steps each agent's stores hold. 0 sizes them from the chain: in a forward-locked chain the environment
    (credited by the first agent) may run ``window`` steps ahead per agent, so an agent deep in the chain sees
    labels up to ``agents x window`` steps before it trains them; a smaller store would drop a label the agent
    still waits for, and the chain would stall. An explicit capacity too small for that is an error."""
    need = len(graph.agents) * window + 2
    locked = any(e.forward == "real" and e.sender != ENV for e in graph.edges)
    if requested == 0:
        return max(32, 2 * need)
    if locked and requested < need:
        raise ValueError(f"run.capacity: {requested} is too small for a forward-locked chain of "
                         f"{len(graph.agents)} agents with window {window} (needs >= {need}; 0 sizes it)")
    return requested
