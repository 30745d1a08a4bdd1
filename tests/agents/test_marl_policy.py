"""Message edges between policies, message by message: the receiver merges the message into its input and sends
dL/dm back (equal to autograd's), the sender's update waits for every backprop out-edge and applies the sum
(backprop), applies M(h) at once (dni) or ignores the message (none)."""

from __future__ import annotations

import copy

import pytest
import torch

from agents import CommStage, PpoConfig, minibatch_order
from interfaces import Kind, Message
from tests.agents.helpers import FakeRuntime

PPO = PpoConfig(num_steps=2, num_minibatches=2, update_epochs=1, max_grad_norm=1e9).model_dump()
FACTS = {"obs_dim": 2, "continuous": False, "action_dim": 2}
MSG = "s_enc->l_enc"


def listener(mode: str = "backprop") -> tuple[CommStage, FakeRuntime]:
    node = CommStage({"name": "l_enc", "kind": "encoder", "hidden": [8]}, {"from": "env", "to": "l_enc"},
                     {"from": "l_enc", "to": "l_head"}, PPO, FACTS, in_dim=2, num_envs=2, rollouts=2,
                     messages_in=[{"from": "s_enc", "to": "l_enc", "backward": mode}], message_dims={MSG: 4})
    rt = FakeRuntime()
    node.start(rt)
    return node, rt


def speaker(mode: str) -> tuple[CommStage, FakeRuntime]:
    node = CommStage({"name": "s_enc", "kind": "encoder", "hidden": [4]}, {"from": "env", "to": "s_enc"},
                     {"from": "s_enc", "to": "s_head"}, PPO, FACTS, in_dim=2, num_envs=2, rollouts=2,
                     messages_out=[{"from": "s_enc", "to": "l_enc", "backward": mode}])
    rt = FakeRuntime()
    node.start(rt)
    return node, rt


def obs(node: CommStage, s: int) -> torch.Tensor:
    x = torch.randn(2, 2)
    node.on_message(Message(Kind.INPUT, "env", f"env->{node.name}", s, [x], {"phase": "act"}))
    return x


def message(node: CommStage, s: int, phase: str, m: torch.Tensor, idx: torch.Tensor | None = None) -> None:
    idx = torch.arange(2) if idx is None else idx
    node.on_message(Message(Kind.ACT, "s_enc", MSG, s, [m, idx], {"phase": phase}))


def drain(node: CommStage) -> None:
    while node.work():
        pass


def test_the_receiver_merges_the_message_and_sends_back_autograds_gradient() -> None:
    node, rt = listener()
    xs = []
    for s in range(3):
        xs.append(obs(node, s))
        assert not node.work()  # nothing without the message of that step
        message(node, s, "act" if s < 2 else "bootstrap", torch.randn(2, 4))
        drain(node)
    assert [m.tensors[0].shape[1] for m in rt.of(Kind.ACT, "l_head")] == [16, 16, 16]
    idx = minibatch_order(0, 0, 1, 4, 2)[0]
    m0 = torch.randn(2, 4)
    message(node, 0, "update", m0, idx)
    before = copy.deepcopy(node.module)
    drain(node)
    assert rt.of(Kind.ACT, "l_head")[-1].meta["phase"] == "update"
    g = torch.randn(2, 16)
    node.on_message(Message(Kind.TARGET, "l_head", "l_enc->l_head", 0, [g]))
    sent = rt.of(Kind.TARGET, "s_enc")
    assert [t.edge for t in sent] == [MSG]
    flat = torch.stack(xs[:2]).reshape(4, 2)
    m = m0.clone().requires_grad_(True)
    (before(torch.cat([flat[idx], m], dim=1)) * g).sum().backward()
    torch.testing.assert_close(sent[0].tensors[0], m.grad)


def test_a_message_for_another_step_is_an_error_naming_the_edge() -> None:
    node, _ = listener()
    obs(node, 0)
    message(node, 1, "act", torch.randn(2, 4))
    with pytest.raises(RuntimeError, match=r"message on s_enc->l_enc is for act step 1, expected act step 0"):
        node.work()


def test_a_none_message_edge_sends_nothing_back() -> None:
    node, rt = listener("none")
    for s in range(3):
        obs(node, s)
        message(node, s, "act" if s < 2 else "bootstrap", torch.randn(2, 4))
        drain(node)
    message(node, 0, "update", torch.randn(2, 4), minibatch_order(0, 0, 1, 4, 2)[0])
    drain(node)
    node.on_message(Message(Kind.TARGET, "l_head", "l_enc->l_head", 0, [torch.randn(2, 16)]))
    assert rt.of(Kind.TARGET) == [] and node.updates == 1


def update_once(mode: str) -> tuple[CommStage, FakeRuntime, list[torch.Tensor], torch.Tensor]:
    """A speaker through one rollout to its first update minibatch; returns its grads-recording node."""
    node, rt = speaker(mode)
    grads: list[list[torch.Tensor]] = []
    step = node.optimizer.step

    def recording_step(*args: object, **kwargs: object) -> None:
        grads.append([p.grad.clone() for p in node.module.parameters()])
        step(*args, **kwargs)

    node.optimizer.step = recording_step
    xs = [obs(node, s) for s in range(3)]
    before = copy.deepcopy(node.module)
    drain(node)
    sent = [m for m in rt.of(Kind.ACT) if m.meta["phase"] == "update"]
    assert {m.edge for m in sent} == {"s_enc->s_head", MSG}  # the same h to its head and as the message
    idx = sent[0].tensors[1]
    flat = torch.stack(xs[:2]).reshape(4, 2)
    return node, grads, before, flat[idx]


def test_a_backprop_sender_waits_for_both_targets_and_applies_their_sum() -> None:
    node, grads, before, x = update_once("backprop")
    g_head, g_msg = torch.randn(2, 8), torch.randn(2, 8)
    node.on_message(Message(Kind.TARGET, "s_head", "s_enc->s_head", 0, [g_head]))
    assert node.updates == 0 and not node.work()   # update-locked on the message too
    node.on_message(Message(Kind.TARGET, "l_enc", MSG, 0, [g_msg]))
    assert node.updates == 1
    before(x).backward(g_head + g_msg)
    for got, p in zip(grads[0], before.parameters()):
        torch.testing.assert_close(got, p.grad)


@pytest.mark.parametrize("mode", ["dni", "none"])
def test_a_dni_or_none_sender_waits_for_its_own_head_only(mode: str) -> None:
    node, grads, before, x = update_once(mode)
    g_head = torch.randn(2, 8)
    node.on_message(Message(Kind.TARGET, "s_head", "s_enc->s_head", 0, [g_head]))
    assert node.updates == 1
    before(x).backward(g_head)  # M's last layer starts at zero: its first prediction adds nothing
    for got, p in zip(grads[0], before.parameters()):
        torch.testing.assert_close(got, p.grad)
    if mode == "dni":
        node.on_message(Message(Kind.TARGET, "l_enc", MSG, 0, [torch.randn(2, 8)]))  # trains M, no update
        assert node.msg_sg[MSG].trained == 1 and node.updates == 1
