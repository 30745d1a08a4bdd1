"""Feed-forward agents driven message by message: evaluation passes that overlap in flight stay apart, and the
work done when a target arrives counts as busy."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from agents import AgentSpec, EdgeSpec, FeedForwardAgent, Graph
from interfaces import Kind, Message, WireError
from tests.agents.helpers import FakeRuntime

FEATURES = 5
CLASSES = 3
B = 4


def chain_agent(name: str, backward: str = "backprop") -> tuple[FeedForwardAgent, FakeRuntime]:
    """One agent of ``l1 -> head`` (``backward``: the l1 -> head edge's mode), started on a fake runtime."""
    l1 = AgentSpec("l1", {"type": "linear", "in": 6, "out": FEATURES}, in_shape=(6,), out_shape=(FEATURES,))
    head = AgentSpec("head", {"type": "head", "in": FEATURES, "classes": CLASSES}, in_shape=(FEATURES,),
                     out_shape=(CLASSES,), head=True)
    graph = Graph([l1, head], [EdgeSpec("env", "l1"), EdgeSpec("l1", "head", backward=backward)], (6,), CLASSES)
    agent = FeedForwardAgent(graph.agent(name), graph)
    rt = FakeRuntime()
    agent.start(rt)
    return agent, rt


def eval_msg(kind: Kind, rnd: int, tensor: torch.Tensor, final: bool = False) -> Message:
    meta = {"phase": "eval", "round": rnd, "last": True, "at": 20 * (rnd + 1), "final": final}
    sender, edge = ("env", "env->head") if kind is Kind.LABEL else ("l1", "l1->head")
    return Message(kind, sender, edge, 0, [tensor], meta)


def test_an_early_next_pass_does_not_mix_into_the_pass_in_flight() -> None:
    """The labels of the next (final) pass come straight from the environment and can overtake this pass's
    activations, which travel through the chain: each pass must be scored on its own tensors."""
    agent, rt = chain_agent("head")
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, CLASSES, (B,), generator=gen)
    acts = [torch.randn(B, FEATURES, generator=gen) for _ in range(2)]
    for msg in (eval_msg(Kind.LABEL, 0, y), eval_msg(Kind.LABEL, 1, y, final=True),
                eval_msg(Kind.ACT, 1, acts[1], final=True), eval_msg(Kind.ACT, 0, acts[0])):
        agent.on_message(msg)
    while agent.work():
        pass
    evals = [meta for verb, meta in rt.told if verb == "eval"]
    assert [(e["round"], e["final"]) for e in evals] == [(0, False), (1, True)]
    with torch.no_grad():
        expected = [float(F.cross_entropy(agent.module(a), y)) for a in acts]
    assert [e["test_loss"] for e in evals] == pytest.approx(expected, abs=1e-6)
    assert ("complete", {}) in rt.told and agent.frozen


def test_a_message_for_a_finished_pass_is_rejected_naming_sender_edge_and_step() -> None:
    agent, _ = chain_agent("head")
    y = torch.zeros(B, dtype=torch.long)
    agent.on_message(eval_msg(Kind.LABEL, 0, y))
    agent.on_message(eval_msg(Kind.ACT, 0, torch.zeros(B, FEATURES)))
    while agent.work():
        pass
    with pytest.raises(WireError, match="round 0 is not pending") as err:
        agent.on_message(eval_msg(Kind.ACT, 0, torch.zeros(B, FEATURES)))
    assert "l1" in str(err.value) and "l1->head" in str(err.value) and "step 0" in str(err.value)


def test_busy_counts_the_synthesizer_learning_when_a_target_arrives() -> None:
    agent, _ = chain_agent("l1", backward="dni")
    agent.on_message(Message(Kind.INPUT, "env", "env->l1", 0, [torch.randn(B, 6)]))
    assert agent.work()
    before = agent.busy_s
    agent.on_message(Message(Kind.TARGET, "head", "l1->head", 0, [torch.randn(B, FEATURES)]))
    assert agent.sg["l1->head"].trained == 1 and agent.busy_s > before


def three_agent_chain(target: str) -> tuple[FeedForwardAgent, FakeRuntime]:
    """l2 of ``l1 -> l2 -> head`` with dni edges whose M learns from ``target``, started on a fake runtime."""
    specs = [AgentSpec("l1", {"type": "linear", "in": 6, "out": FEATURES}, in_shape=(6,), out_shape=(FEATURES,)),
             AgentSpec("l2", {"type": "linear", "in": FEATURES, "out": FEATURES}, in_shape=(FEATURES,),
                       out_shape=(FEATURES,)),
             AgentSpec("head", {"type": "head", "in": FEATURES, "classes": CLASSES}, in_shape=(FEATURES,),
                       out_shape=(CLASSES,), head=True)]
    sg = {"hidden": [], "target": target}
    edges = [EdgeSpec("env", "l1"), EdgeSpec("l1", "l2", backward="dni", synthesizer=sg),
             EdgeSpec("l2", "head", backward="dni", synthesizer=sg)]
    graph = Graph(specs, edges, (6,), CLASSES)
    agent = FeedForwardAgent(graph.agent("l2"), graph)
    rt = FakeRuntime()
    agent.start(rt)
    return agent, rt


def test_a_delayed_target_goes_back_when_the_true_gradient_for_the_output_arrives() -> None:
    """Bootstrap: dL/dx goes back at once (from l2's own M). Delayed: nothing at once; when the head's
    target for l2's output comes back, l2 sends J^T of it, at its weights of that moment."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(B, FEATURES, generator=gen)
    boot, boot_rt = three_agent_chain("bootstrap")
    boot.on_message(Message(Kind.ACT, "l1", "l1->l2", 0, [x]))
    boot.work()
    assert len(boot_rt.of(Kind.TARGET, "l1")) == 1
    agent, rt = three_agent_chain("delayed")
    agent.on_message(Message(Kind.ACT, "l1", "l1->l2", 0, [x]))
    agent.work()
    assert rt.of(Kind.TARGET, "l1") == []           # l2's own M is not a target any more
    delta = torch.randn(B, FEATURES, generator=gen)
    agent.on_message(Message(Kind.TARGET, "head", "l2->head", 0, [delta]))
    (sent,) = rt.of(Kind.TARGET, "l1")
    xr = x.clone().requires_grad_(True)
    agent.module(xr).backward(delta)  # a train-mode pass, as the wave takes it
    assert sent.step == 0 and torch.allclose(sent.tensors[0], xr.grad, atol=1e-6)
    assert agent.sg["l2->head"].trained == 1        # and l2's own M learned from the same target


@pytest.mark.parametrize("backward", ["dni", "backprop"])
def test_credits_ride_on_the_target_of_the_same_step(backward: str) -> None:
    """A head sends no ack messages: its target carries the credits of the steps it consumed (a skipped older
    step too), and the sender takes them back from the target."""
    head, rt = chain_agent("head", backward)
    gen = torch.Generator().manual_seed(0)
    for step in (0, 1):
        head.on_message(Message(Kind.ACT, "l1", "l1->head", step, [torch.randn(B, FEATURES, generator=gen)]))
    head.on_message(Message(Kind.LABEL, "env", "env->head", 1, [torch.zeros(B, dtype=torch.long)]))
    while head.work():  # step 0 has no label: step 1 is trained, step 0 skipped
        pass
    sent = [m for _, m in rt.sent]
    assert not [m for m in sent if m.meta.get("verb") == "ack"]
    assert [m.meta["acks"] for m in sent if m.kind is Kind.TARGET] == [[0, 1]]

    l1, _ = chain_agent("l1", "dni")
    l1.inflight["l1->head"] = 2
    l1.on_message(Message(Kind.TARGET, "head", "l1->head", 1, [torch.zeros(B, FEATURES)], {"acks": [0, 1]}))
    assert l1.inflight["l1->head"] == 0


def test_a_stage_waiting_on_a_true_gradient_acks_at_once() -> None:
    """Its target leaves only when the gradient (or, with a delayed target, the target for its output) comes back
    from downstream: the credit must not wait that long."""
    specs = [AgentSpec("l1", {"type": "linear", "in": 6, "out": FEATURES}, in_shape=(6,), out_shape=(FEATURES,)),
             AgentSpec("l2", {"type": "linear", "in": FEATURES, "out": FEATURES}, in_shape=(FEATURES,),
                       out_shape=(FEATURES,)),
             AgentSpec("head", {"type": "head", "in": FEATURES, "classes": CLASSES}, in_shape=(FEATURES,),
                       out_shape=(CLASSES,), head=True)]
    for backward, target, rides in (("backprop", "bootstrap", False), ("dni", "bootstrap", True),
                                    ("dni", "delayed", False)):
        edges = [EdgeSpec("env", "l1"), EdgeSpec("l1", "l2", backward="dni", synthesizer={"target": target}),
                 EdgeSpec("l2", "head", backward=backward)]
        graph = Graph(specs, edges, (6,), CLASSES)
        assert ("l1->l2" in FeedForwardAgent(graph.agent("l2"), graph).acks_ride) is rides


def test_dni_edges_learn_from_delayed_targets_by_default_and_cdni_from_bootstrapped_ones() -> None:
    assert EdgeSpec("l1", "l2", backward="dni").sg_target == "delayed"
    assert EdgeSpec("l1", "l2", backward="cdni").sg_target == "bootstrap"
    assert EdgeSpec("l1", "l2", backward="dni", synthesizer={"target": "bootstrap"}).sg_target == "bootstrap"
