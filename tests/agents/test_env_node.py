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


def _eval_rounds(rt: FakeRuntime) -> list[tuple[int, tuple[int, ...] | None]]:
    return sorted({(m.meta["round"], tuple(m.meta.get("supersedes", ())) or None) for m in rt.of(Kind.INPUT, "l1")
                   if m.meta.get("phase") == "eval"})


def test_a_pass_a_node_died_in_is_sent_again_when_every_node_is_back() -> None:
    env, rt = _env()
    env.eval_every, env.step = 5, 5
    assert env.work() and _eval_rounds(rt) == [(0, None)]
    env.on_peer("l2", up=False)  # died during pass 0: the head never says it is evaluated
    env.work()
    assert _eval_rounds(rt) == [(0, None)]  # not while it is down
    env.on_message(Message(Kind.CONTROL, "l1", "env->l1", 5, [], {"verb": "ack"}))  # l1 took that batch
    env.on_peer("l2", up=True)
    assert env.work() and _eval_rounds(rt) == [(0, None), (1, (0,))]  # the same pass, as round 1, superseding 0
    env.on_message(Message(Kind.CONTROL, "head", "env->head", 0, [], {"verb": "evaluated", "round": 1}))
    assert env.eval_open == {}


def test_a_pass_the_head_finished_is_not_sent_again() -> None:
    env, rt = _env()
    env.eval_every, env.step = 5, 5
    env.work()
    env.on_message(Message(Kind.CONTROL, "head", "env->head", 0, [], {"verb": "evaluated", "round": 0}))
    env.on_peer("l2", up=False)
    env.on_peer("l2", up=True)
    env.work()
    assert _eval_rounds(rt) == [(0, None)]


def test_a_resumed_environment_sends_the_passes_open_at_its_checkpoint_again(tmp_path) -> None:
    env, rt = _env()
    env.run_dir = str(tmp_path)
    env.eval_every, env.step = 5, 5
    env.work()
    env.save_checkpoint()  # stopped with pass 0 open (SIGTERM before the agents finished it)
    recipe, graph = prepare("runs/mnist-fcn4-cdni.toml", [*TINY, "run.launcher=inproc"])
    resumed = EnvNode(graph, recipe["env"]["id"], recipe["env"]["kwargs"], {"split": "test", "limit": 64}, steps=40,
                      window=4, eval_every=5, run_dir=str(tmp_path), resume=True)
    rt2 = FakeRuntime()
    resumed.start(rt2)
    assert resumed.work() and _eval_rounds(rt2) == [(1, (0,))]
