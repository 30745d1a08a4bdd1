"""The multi-agent env node, message by message: observations and rewards routed by agent name, an agent that
leaves, episodes recorded, bad actions and env failures named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents import MarlEnvNode, ParallelCopies, parallel_facts
from interfaces import Kind, Message
from tests.agents.helpers import FakeRuntime
from tests.agents.marl_envs import Signal

SIGNAL = "tests.agents.marl_envs:Signal"
ROUTES = {"speaker": {"readers": ["s_enc"], "head": "s_head", "drop": []},
          "listener": {"readers": ["l_enc"], "head": "l_head", "drop": [1]}}


def node(**kwargs: object) -> tuple[MarlEnvNode, FakeRuntime]:
    env = {"id": SIGNAL, "num_envs": 2, "eval_episodes": 2, "window": 2, "kwargs": kwargs}
    n = MarlEnvNode(env, ROUTES, steps=8, num_steps=4)
    rt = FakeRuntime()
    n.start(rt)
    return n, rt


def act(n: MarlEnvNode, step: int, speaker: list[int], listener: list[int], phase: str = "act") -> None:
    for head, a in (("s_head", speaker), ("l_head", listener)):
        n.on_message(Message(Kind.ACT, head, f"{head}->env", step, [torch.tensor(a)], {"phase": phase}))


def test_the_facts_of_each_agent() -> None:
    assert parallel_facts(SIGNAL, {}) == {"speaker": {"obs_dim": 1, "continuous": False, "action_dim": 2},
                                          "listener": {"obs_dim": 2, "continuous": False, "action_dim": 2}}


def test_observations_actions_and_rewards_are_routed_by_name() -> None:
    n, rt = node()
    s_obs, l_obs = rt.of(Kind.INPUT, "s_enc"), rt.of(Kind.INPUT, "l_enc")
    assert [m.edge for m in s_obs + l_obs] == ["env->s_enc", "env->l_enc"]
    assert s_obs[0].tensors[0].shape == (2, 1) and l_obs[0].tensors[0].shape == (2, 1)  # index 1 dropped
    goals = s_obs[0].tensors[0][:, 0].long().tolist()
    assert not n.work()  # waits for both heads
    n.on_message(Message(Kind.ACT, "s_head", "s_head->env", 0, [torch.tensor([1, 0])], {"phase": "act"}))
    assert not n.work()
    n.on_message(Message(Kind.ACT, "l_head", "l_head->env", 0, [torch.tensor(goals)], {"phase": "act"}))
    assert n.work()
    s_label, l_label = rt.of(Kind.LABEL, "s_head")[0], rt.of(Kind.LABEL, "l_head")[0]
    assert s_label.edge == "env->s_head" and l_label.edge == "env->l_head"
    assert s_label.tensors[0].tolist() == [[0.0, 1.0], [1.0, 0.0]]  # each head gets its own agent's action
    assert l_label.tensors[1].tolist() == [1.0, 1.0] and s_label.tensors[1].tolist() == [1.0, 1.0]
    assert l_label.tensors[2].tolist() == [0.0, 0.0]
    assert rt.of(Kind.INPUT, "l_enc")[1].tensors[0][:, 0].tolist() == [0.25, 0.25]


def test_an_agent_that_leaves_is_dead_until_its_copy_resets() -> None:
    n, rt = node(leave_at=1)
    for s in range(4):
        act(n, s, [1, 1], [0, 0])
        assert n.work()
    dones = [m.tensors[2].tolist() for m in rt.of(Kind.LABEL, "s_head")]
    rewards = [m.tensors[1].tolist() for m in rt.of(Kind.LABEL, "s_head")]
    assert dones == [[1.0, 1.0]] * 4            # it left at step 1, then every step is a dead one
    assert rewards[1:] == [[0.0, 0.0]] * 3
    assert [m.tensors[2].tolist() for m in rt.of(Kind.LABEL, "l_head")] == [[0.0, 0.0]] * 3 + [[1.0, 1.0]]
    assert rt.of(Kind.INPUT, "s_enc")[2].tensors[0].tolist() == [[0.0], [0.0]]  # a dead agent sees zeros
    episodes = [meta for verb, meta in rt.told if verb == "metrics" and "returns" in meta]
    assert len(episodes) == 1 and len(episodes[0]["returns"]) == 2   # both copies ended at step 4
    row = episodes[0]  # the team's return is the mean of the agents' (the speaker's ended after one step)
    assert np.mean(row["returns"]) == pytest.approx((row["return/speaker"] + row["return/listener"]) / 2)
    assert row["return/speaker"] <= 1.0 < row["return/listener"] or row["return/listener"] == 0.0


def test_dead_agents_actions_never_reach_the_env() -> None:
    copies = ParallelCopies(Signal, {"leave_at": 1}, 3)
    copies.reset(seed=0)
    for _ in range(4):  # Signal raises if it is given an action for an agent that has left
        copies.step({"speaker": np.ones(3, np.int64), "listener": np.zeros(3, np.int64)})
    assert copies.lengths.sum() == 0  # every copy finished and reset


def test_a_full_run_of_the_node_evaluates_and_completes() -> None:
    n, rt = node()
    while not n.done:
        if n.evaluation is not None:
            act(n, n.evaluation["k"], [0, 0], [1, 1], "eval")
        elif ("act", "s_head", n.step) not in n.actions:
            act(n, n.step, [0, 0], [1, 1])
        assert n.work()
    evals = [meta for verb, meta in rt.told if verb == "eval"]
    assert [e["final"] for e in evals] == [True]
    assert evals[0]["episodes"] == 2 and evals[0]["mean_length"] == 4
    assert evals[0]["mean_return"] == evals[0]["mean_return/listener"]
    assert any(verb == "complete" for verb, _ in rt.told)


def test_a_bad_action_names_the_head_and_the_agent() -> None:
    n, _ = node()
    act(n, 0, [0, 0], [0, 7])
    with pytest.raises(ValueError, match=r"action from 'l_head' for 'listener' at step 0: action 7 of copy 1"):
        n.work()


def test_an_env_failure_names_the_env_and_the_step() -> None:
    n, _ = node(fail_at=2)
    act(n, 0, [0, 0], [0, 0])
    assert n.work()
    act(n, 1, [0, 0], [0, 0])
    with pytest.raises(RuntimeError, match=r"marl_envs:Signal' at step 1: env copy 0 failed .*OSError: the line"):
        n.work()
