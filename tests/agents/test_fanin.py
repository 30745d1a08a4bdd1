"""Fan-in graphs: several input edges per agent, checked before start (errors naming the edge), merged by the
agent's rule, and dL/dx split back per edge exactly as autograd splits it."""

from __future__ import annotations

import copy

import pytest
import torch

from agents import AgentSpec, EdgeSpec, FeedForwardAgent, Graph, resolve
from agents.blocks import ClassifierHead
from interfaces import Kind, Message
from tests.agents.helpers import FakeRuntime

CLASSES = 3
B = 4


def linear(name: str, d_in: int, d_out: int, merge: str = "concat") -> AgentSpec:
    return AgentSpec(name, {"type": "linear", "in": d_in, "out": d_out}, merge=merge)


def head(d_in: int, merge: str = "concat") -> AgentSpec:
    return AgentSpec("head", {"type": "head", "in": d_in, "classes": CLASSES}, merge=merge)


def two_sensors(d_a: int = 3, d_b: int = 5, merge: str = "concat", backward: str = "backprop",
                head_in: int | None = None) -> Graph:
    """env -> a, env -> b, then a and b into the head."""
    agents = [linear("a", 6, d_a), linear("b", 6, d_b), head(head_in or d_a + d_b, merge)]
    edges = [EdgeSpec("env", "a"), EdgeSpec("env", "b"), EdgeSpec("a", "head", backward=backward),
             EdgeSpec("b", "head", backward=backward)]
    return Graph(agents, edges, (6,), CLASSES)


def test_fan_in_shapes_are_merged_in_edge_order() -> None:
    graph = resolve(two_sensors())
    assert graph.agent("head").in_shape == (8,)
    assert [e.name for e in graph.in_edges("head")] == ["a->head", "b->head"]
    assert graph.order()[-1] == "head"
    graph = resolve(two_sensors(4, 4, merge="sum", head_in=4))
    assert graph.agent("head").in_shape == (4,)


def test_order_puts_every_sender_first() -> None:
    """A diamond: the head is listed only once, after both of its senders, whatever the edge order."""
    agents = [linear("a", 6, 4), linear("b", 4, 4), head(8)]
    edges = [EdgeSpec("a", "head"), EdgeSpec("env", "a"), EdgeSpec("b", "head"), EdgeSpec("a", "b")]
    graph = resolve(Graph(agents, edges, (6,), CLASSES))
    assert graph.order() == ["a", "b", "head"]


@pytest.mark.parametrize("graph, words", [
    (two_sensors(4, 5, merge="sum", head_in=4), ["agents.head.merge", "b->head", "[5]", "same shape"]),
    (two_sensors(head_in=7), ["agents.head.module", "[8]", "'a', 'b'"]),
    (Graph([linear("a", 6, 4), linear("b", 4, 4), head(4)],
           [EdgeSpec("env", "a"), EdgeSpec("a", "b"), EdgeSpec("b", "a"), EdgeSpec("b", "head")], (6,), CLASSES),
     ["edges.a->b", "closes a cycle b -> a -> b"]),
    (Graph([linear("a", 6, 4), head(4)], [EdgeSpec("env", "a"), EdgeSpec("a", "a"), EdgeSpec("a", "head")],
           (6,), CLASSES), ["edges.a->a", "cannot feed itself"]),
    (Graph([linear("a", 6, 4), head(8)], [EdgeSpec("env", "a"), EdgeSpec("a", "head"), EdgeSpec("a", "head")],
           (6,), CLASSES), ["edges.a->head", "duplicate edge"]),
    (Graph([linear("a", 6, 4), head(4)], [EdgeSpec("env", "a"), EdgeSpec("a", "head", part=1)], (6,), CLASSES),
     ["edges.a->head.part", "only an edge from the environment"]),
    (Graph([linear("a", 6, 4), head(4)], [EdgeSpec("env", "a", part=4), EdgeSpec("a", "head")], (4, 6), CLASSES),
     ["edges.env->a.part", "no part 4"]),
    (Graph([linear("a", 6, 4), head(4, merge="mean")], [EdgeSpec("env", "a"), EdgeSpec("a", "head")], (6,), CLASSES),
     ["agents.head.merge", "'concat', 'sum'"]),
    (Graph([linear("a", 6, 4), linear("b", 6, 4), head(4)], [EdgeSpec("env", "a"), EdgeSpec("a", "head")],
           (6,), CLASSES), ["agents.b", "no input edge"]),
])
def test_bad_fan_in_graphs_are_rejected_naming_the_edge(graph: Graph, words: list[str]) -> None:
    with pytest.raises(ValueError) as err:
        resolve(graph)
    for w in words:
        assert w in str(err.value)


def test_env_edges_carry_their_part() -> None:
    agents = [linear("a", 6, 4), linear("b", 6, 4), head(8)]
    edges = [EdgeSpec("env", "a", part=0), EdgeSpec("env", "b", part=1), EdgeSpec("a", "head"), EdgeSpec("b", "head")]
    graph = resolve(Graph(agents, edges, (2, 6), CLASSES))
    assert graph.agent("a").in_shape == (6,) and graph.env_view("head") == (2, 6)


def started(graph: Graph, name: str) -> tuple[FeedForwardAgent, FakeRuntime]:
    agent = FeedForwardAgent(graph.agent(name), graph)
    rt = FakeRuntime()
    agent.start(rt)
    return agent, rt


@pytest.mark.parametrize("merge, d_b", [("concat", 5), ("sum", 3)])
def test_a_fan_in_heads_targets_are_autograds_per_edge_gradients(merge: str, d_b: int) -> None:
    graph = resolve(two_sensors(3, d_b, merge=merge, head_in=3 + d_b if merge == "concat" else 3))
    agent, rt = started(graph, "head")
    before = copy.deepcopy(agent.module)
    gen = torch.Generator().manual_seed(0)
    h_a, h_b = torch.randn(B, 3, generator=gen), torch.randn(B, d_b, generator=gen)
    y = torch.randint(0, CLASSES, (B,), generator=gen)
    agent.on_message(Message(Kind.ACT, "b", "b->head", 0, [h_b]))  # arrival order does not matter
    agent.on_message(Message(Kind.LABEL, "env", "env->head", 0, [y]))
    assert not agent.work()  # a's part of step 0 is missing: the head waits
    agent.on_message(Message(Kind.ACT, "a", "a->head", 0, [h_a]))
    assert agent.work()
    targets = {m.edge: m.tensors[0] for m in rt.of(Kind.TARGET)}
    assert {p for p, m in rt.sent if m.kind is Kind.TARGET} == {"a", "b"}
    a, b = h_a.clone().requires_grad_(), h_b.clone().requires_grad_()
    x = torch.cat([a, b], 1) if merge == "concat" else a + b
    ClassifierHead.loss(before(x), y).backward()
    assert torch.allclose(targets["a->head"], a.grad, atol=1e-6)
    assert torch.allclose(targets["b->head"], b.grad, atol=1e-6)


def test_credits_go_back_per_edge() -> None:
    """Each forward-locked in-edge returns its own sender's credit (riding on that edge's target)."""
    graph = resolve(two_sensors())
    agent, rt = started(graph, "head")
    for edge, d in (("a->head", 3), ("b->head", 5)):
        agent.on_message(Message(Kind.ACT, edge[0], edge, 0, [torch.randn(B, d)]))
    agent.on_message(Message(Kind.LABEL, "env", "env->head", 0, [torch.zeros(B, dtype=torch.long)]))
    assert agent.work()
    assert {m.edge: m.meta.get("acks") for m in rt.of(Kind.TARGET)} == {"a->head": [0], "b->head": [0]}


def test_a_synthetic_edge_uses_I_where_its_h_is_missing() -> None:
    """Forward-unlocked fan-in: the head trains at once on I(x) for the sensor that has not sent, and its I
    learns from the real h when it comes."""
    agents = [linear("a", 6, 3), linear("b", 6, 5), head(8)]
    edges = [EdgeSpec("env", "a"), EdgeSpec("env", "b"), EdgeSpec("a", "head", backward="cdni", forward="synthetic"),
             EdgeSpec("b", "head", backward="cdni", forward="synthetic")]
    graph = resolve(Graph(agents, edges, (6,), CLASSES))
    agent, rt = started(graph, "head")
    assert set(agent.si) == {"a->head", "b->head"}
    agent.on_message(Message(Kind.INPUT, "env", "env->head", 0, [torch.randn(B, 6)]))
    agent.on_message(Message(Kind.LABEL, "env", "env->head", 0, [torch.zeros(B, dtype=torch.long)]))
    agent.on_message(Message(Kind.ACT, "a", "a->head", 0, [torch.randn(B, 3)]))
    assert agent.work()
    assert agent.steps_done == 1 and agent.trained_synthetic == 1
    assert {m.edge for m in rt.of(Kind.TARGET)} == {"a->head", "b->head"}
    assert agent.si["a->head"].trained == 1 and agent.si["b->head"].trained == 0
