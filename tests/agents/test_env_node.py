"""The environment node while an agent is being restarted (docs/FAULTS.md)."""

from __future__ import annotations

from agents import EnvNode
from interfaces import Kind, Message
from runs import prepare
from tests.agents.helpers import FakeRuntime
from tests.runs.conftest import TINY


def _env() -> tuple[EnvNode, FakeRuntime]:
    recipe, graph = prepare("runs/mnist-fcn4-cdni.toml", [*TINY, "run.launcher=inproc"])
    env = EnvNode(graph, recipe["env"]["id"], recipe["env"]["kwargs"], {"split": "test", "limit": 64}, steps=40,
                  window=4)
    rt = FakeRuntime()
    env.start(rt)
    return env, rt


def test_a_restarted_agent_is_sent_nothing_while_down_then_the_latest_labels_again() -> None:
    env, rt = _env()
    env.work()
    env.on_peer("l2", up=False)
    for step in range(1, 4):
        env.on_message(Message(Kind.CONTROL, "l1", "env->l1", step - 1, [], {"verb": "ack"}))
        assert env.work()
    assert [m.step for m in rt.of(Kind.LABEL, "l2")] == [0]  # nothing while it was down
    env.on_peer("l2", up=True)
    assert [m.step for m in rt.of(Kind.LABEL, "l2")] == [0, 0, 1, 2, 3]  # its sender computes on these next


def test_a_down_fed_agent_holds_no_credit_and_defers_evaluations() -> None:
    env, rt = _env()
    for _ in range(4):
        env.work()
    assert not env.work()  # window full: l1 acked nothing
    env.on_peer("l1", up=False)
    assert env.inflight["l1"] == 0 and env.work()  # its credits will never come back
    env.eval_every, env.step = 5, 5
    assert env.round_due() and not env.work()  # no evaluation while a node is down
    env.on_peer("l1", up=True)
    assert env.work() and env.round == 1
