"""The split policy's protocol, message by message: acting, bootstrap, update minibatches (a backprop stage
waits for each true gradient, a DNI stage does not), and the PPO pieces it shares with the plain loop."""

from __future__ import annotations

import pytest
import torch

from agents import PolicyHead, PolicyStage, PpoConfig, gae, minibatch_order
from interfaces import Kind, Message
from tests.agents.helpers import FakeRuntime

PPO = PpoConfig(num_steps=2, num_minibatches=2, update_epochs=1).model_dump()
FACTS = {"obs_dim": 3, "continuous": False, "action_dim": 2}
ENCODER = {"name": "enc", "kind": "encoder", "hidden": [8]}
HEAD = {"name": "head", "kind": "actor_critic", "hidden": [8]}


def stage(mode: str) -> tuple[PolicyStage, FakeRuntime]:
    node = PolicyStage(ENCODER, {"from": "env", "to": "enc"}, {"from": "enc", "to": "head", "backward": mode},
                       PPO, FACTS, in_dim=3, num_envs=2, rollouts=2)
    rt = FakeRuntime()
    node.start(rt)
    return node, rt


def feed(node: PolicyStage, steps: range) -> None:
    for s in steps:
        node.on_message(Message(Kind.INPUT, "env", "env->enc", s, [torch.randn(2, 3)], {"phase": "act"}))
        while node.work():
            pass


def phases(rt: FakeRuntime) -> list[tuple[str, int]]:
    return [(m.meta["phase"], m.step) for m in rt.of(Kind.ACT, "head")]


def test_a_backprop_stage_waits_for_each_true_gradient() -> None:
    node, rt = stage("backprop")
    feed(node, range(3))  # step 2 ends rollout 0
    assert phases(rt) == [("act", 0), ("act", 1), ("bootstrap", 2), ("update", 0)]
    before = [p.detach().clone() for p in node.module.parameters()]
    node.on_message(Message(Kind.TARGET, "head", "enc->head", 0, [torch.ones(2, 16)]))
    assert any(not torch.equal(a, b) for a, b in zip(before, node.module.parameters()))  # updated with it
    while node.work():
        pass
    assert phases(rt)[-1] == ("update", 1)
    node.on_message(Message(Kind.TARGET, "head", "enc->head", 1, [torch.ones(2, 16)]))
    while node.work():
        pass
    assert phases(rt)[-1] == ("act", 2)  # the boundary observation again, with the updated encoder
    assert node.updates == 2


def test_a_dni_stage_updates_at_once_and_m_learns_later() -> None:
    node, rt = stage("dni")
    feed(node, range(3))
    assert phases(rt) == [("act", 0), ("act", 1), ("bootstrap", 2), ("update", 0), ("update", 1), ("act", 2)]
    updates = rt.of(Kind.ACT, "head")[3:5]
    idx = torch.cat([m.tensors[1] for m in updates])
    assert sorted(idx.tolist()) == [0, 1, 2, 3]  # one epoch: every sample of the rollout once
    for k in (0, 1):
        node.on_message(Message(Kind.TARGET, "head", "enc->head", k, [torch.ones(2, 16)]))
    assert node.sg.trained == 2 and node.updates == 2


def test_the_head_acts_bootstraps_and_sends_its_input_gradient_back() -> None:
    head = PolicyHead(HEAD, {"from": "enc", "to": "head", "backward": "dni"}, PPO, FACTS, in_dim=16, num_envs=2,
                      rollouts=2)
    rt = FakeRuntime()
    head.start(rt)
    for s in range(2):
        head.on_message(Message(Kind.ACT, "enc", "enc->head", s, [torch.randn(2, 16), torch.arange(2)],
                                {"phase": "act"}))
        assert head.work()
        head.on_message(Message(Kind.LABEL, "env", "env->head", s, [torch.zeros(2, 2), torch.ones(2), torch.zeros(2)]))
    assert [m.step for m in rt.of(Kind.ACT, "env")] == [0, 1]
    head.on_message(Message(Kind.ACT, "enc", "enc->head", 2, [torch.randn(2, 16), torch.arange(2)],
                            {"phase": "bootstrap"}))
    assert head.work() and head.rollout == 1 and len(rt.of(Kind.ACT, "env")) == 2  # no action: GAE instead
    head.on_message(Message(Kind.ACT, "enc", "enc->head", 0, [torch.randn(2, 16), torch.tensor([0, 3])],
                            {"phase": "update", "rollout": 0}))
    assert head.work()
    target = rt.of(Kind.TARGET, "enc")[0]
    assert target.step == 0 and target.tensors[0].shape == (2, 16) and target.tensors[0].abs().sum() > 0


def test_gae_stops_at_episode_ends() -> None:
    adv, ret = gae(torch.ones(3, 1), torch.zeros(3, 1), torch.tensor([[0.0], [1.0], [0.0]]), torch.tensor([10.0]),
                   gamma=0.5, lam=1.0)
    assert adv[:, 0].tolist() == pytest.approx([1.5, 1.0, 6.0]) and torch.equal(adv, ret)


def test_minibatch_order_is_a_permutation_per_epoch_and_seeded() -> None:
    order = minibatch_order(seed=3, rollout=1, epochs=2, batch=8, size=4)
    assert len(order) == 4 and sorted(torch.cat(order[:2]).tolist()) == list(range(8))
    assert all(torch.equal(a, b) for a, b in zip(order, minibatch_order(3, 1, 2, 8, 4)))
