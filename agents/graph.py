"""The system's topology: agents, the edges between them and their modes, resolved from a recipe.

A graph is a directed acyclic graph rooted at the environment. An agent may have several input edges
(fan-in), each with its own modes, M (at its sender) and I (at the agent); their tensors are combined in edge
order by the agent's ``merge`` rule (``agents.merge``). It may have several output edges (fan-out); the
synthetic or true gradients coming back on them are summed. An edge from the environment may carry one part
of the observation (``part = i``: ``obs[:, i]``), so that sensors can each read their own view.

Everything here is plain data so it can be handed to a spawned process (or a Ray actor) as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from interfaces import SG_TARGETS

from .blocks import build_module, is_head
from .merge import MERGES, merged_shape
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
    part: int | None = None    # edges from the environment only: carry obs[:, part] instead of the whole batch

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
    merge: str = "concat"      # how several input edges combine, in edge order (agents.MERGES)
    in_shape: tuple[int, ...] = ()   # the merged input
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

    def in_edges(self, name: str) -> list[EdgeSpec]:
        """The agent's input edges, in edge order (the order its inputs are merged in)."""
        return [e for e in self.edges if e.receiver == name]

    def in_edge(self, name: str) -> EdgeSpec:
        """The agent's only input edge (agents that take one input: ticking levels, policies)."""
        ins = self.in_edges(name)
        if len(ins) != 1:
            raise ValueError(f"agents.{name}: expected exactly one input edge, has {len(ins)}")
        return ins[0]

    def env_edge(self, name: str) -> EdgeSpec | None:
        """The agent's edge from the environment, if it has one."""
        return next((e for e in self.in_edges(name) if e.sender == ENV), None)

    def edge_shape(self, edge: EdgeSpec) -> tuple[int, ...]:
        """Per-sample shape of what ``edge`` carries (its sender must be resolved)."""
        if edge.sender != ENV:
            return self.agent(edge.sender).out_shape
        return self.input_shape[1:] if edge.part is not None else self.input_shape

    def env_view(self, name: str) -> tuple[int, ...]:
        """Per-sample shape of the input the environment sends this agent on ``env->name``: its env edge's
        (a part, or the whole batch), else the whole batch (the x of its synthetic input models I(x))."""
        edge = self.env_edge(name)
        return self.edge_shape(edge) if edge is not None else self.input_shape

    def out_edges(self, name: str) -> list[EdgeSpec]:
        return [e for e in self.edges if e.sender == name]

    def heads(self) -> list[str]:
        return [a.name for a in self.agents if a.head]

    def needs_labels(self, name: str) -> bool:
        """Heads need labels for the loss; cDNI senders need them as the synthesizer's context."""
        return self.agent(name).head or any(e.backward == "cdni" for e in self.out_edges(name))

    def order(self) -> list[str]:
        """Agents from the environment outwards, each after every sender of its input edges (agents on a
        cycle, or not reached from the environment, are left out)."""
        waiting = {a.name: len(self.in_edges(a.name)) for a in self.agents}
        done: list[str] = []
        frontier = [ENV]
        while frontier:
            node = frontier.pop(0)
            for e in self.out_edges(node):
                if e.receiver not in waiting:
                    continue
                waiting[e.receiver] -= 1
                if waiting[e.receiver] == 0:
                    done.append(e.receiver)
                    frontier.append(e.receiver)
        return done

    def cycle(self, among: set[str]) -> list[str]:
        """A cycle through agents of ``among`` (agents ``order`` left out), found by walking back along input
        edges from senders that are themselves left out; [] if none."""
        node = min(among)
        path: list[str] = []
        while node not in path:
            path.append(node)
            back = [e.sender for e in self.in_edges(node) if e.sender in among]
            if not back:
                return []
            node = back[0]
        loop = path[path.index(node):][::-1]
        return [*loop, loop[0]]


def validate_topology(graph: Graph) -> None:
    """Check the graph is a directed acyclic graph rooted at the environment; errors name the offending agent
    or edge."""
    names = [a.name for a in graph.agents]
    if len(set(names)) != len(names):
        raise ValueError(f"agents: duplicate agent names in {names}")
    if ENV in names:
        raise ValueError(f"agents: {ENV!r} is reserved for the environment")
    known = set(names) | {ENV}
    seen: set[str] = set()
    for e in graph.edges:
        if e.name in seen:
            raise ValueError(f"edges.{e.name}: duplicate edge (one edge per pair of agents)")
        seen.add(e.name)
        if e.sender == e.receiver:
            raise ValueError(f"edges.{e.name}: an agent cannot feed itself (a cycle)")
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
        if e.part is not None and e.sender != ENV:
            raise ValueError(f"edges.{e.name}.part: only an edge from the environment carries a part of its input")
        if e.part is not None and not 0 <= e.part < (graph.input_shape[0] if len(graph.input_shape) > 1 else 0):
            raise ValueError(f"edges.{e.name}.part: the environment's input {list(graph.input_shape)} has no part "
                             f"{e.part} (parts index its first per-sample axis)")
    for name in names:
        if not graph.in_edges(name):
            raise ValueError(f"agents.{name}: has no input edge")
    missing = set(names) - set(graph.order())
    if missing:
        loop = graph.cycle(missing)
        if loop:
            raise ValueError(f"edges.{loop[-2]}->{loop[-1]}: closes a cycle {' -> '.join(loop)} "
                             "(inputs must flow from the environment without going round)")
        raise ValueError(f"agents: {sorted(missing)} not reachable from the environment")
    for a in graph.agents:
        if a.merge not in MERGES:
            raise ValueError(f"agents.{a.name}.merge: expected one of {MERGES}, got {a.merge!r}")
        if not 0.0 < a.update_prob <= 1.0:
            raise ValueError(f"agents.{a.name}.update_prob: must be in (0, 1], got {a.update_prob}")
        if a.slowdown < 1.0:
            raise ValueError(f"agents.{a.name}.slowdown: must be >= 1 (a factor), got {a.slowdown}")


def resolve(graph: Graph) -> Graph:
    """Validate the topology and fill in each agent's per-sample shapes by a dry forward pass."""
    validate_topology(graph)
    for name in graph.order():
        spec = graph.agent(name)
        ins = graph.in_edges(name)
        try:
            spec.in_shape = merged_shape(spec.merge, [graph.edge_shape(e) for e in ins], [e.name for e in ins])
        except ValueError as err:
            raise ValueError(f"agents.{name}.merge: {err}") from None
        module = build_module(spec.module)
        module.eval()
        try:
            with torch.no_grad():
                out = module(torch.zeros(2, *spec.in_shape))
        except RuntimeError as err:
            source = ", ".join(repr(e.sender) for e in ins)
            raise ValueError(f"agents.{name}.module: does not accept input of shape {list(spec.in_shape)} "
                             f"(from {source}): {err}") from None
        try:
            build_optimizer(spec.optimizer, module.parameters())
        except ValueError as err:
            raise ValueError(f"agents.{name}.{err}") from None
        spec.out_shape = tuple(out.shape[1:])
        spec.head = is_head(module)
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
