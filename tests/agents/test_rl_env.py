"""The RL environment node: observations out, actions in, rewards to the head, episodes recorded; bad actions
and failing environments are errors that say what was wrong."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import RlEnvNode, check_action, make_vector_env, space_facts
from interfaces import Kind, Message
from tests.agents.helpers import FakeRuntime

CORRIDOR = "tests.agents.rl_envs:Corridor"


def env_node(env_id: str = CORRIDOR, steps: int = 32, num_steps: int = 4,
             **env: object) -> tuple[RlEnvNode, FakeRuntime]:
    node = RlEnvNode({"id": env_id, "num_envs": 2, "eval_episodes": 3, **env}, first="enc", head="head",
                     context=["enc"], steps=steps, num_steps=num_steps, seed=0)
    rt = FakeRuntime()
    node.start(rt)
    return node, rt


def act(node: RlEnvNode, step: int, action: list, phase: str = "act") -> None:
    node.on_message(Message(Kind.ACT, "head", "head->env", step, [torch.tensor(action)], {"phase": phase}))


def test_observations_out_actions_in_rewards_to_the_head() -> None:
    node, rt = env_node()
    first = rt.of(Kind.INPUT, "enc")
    assert len(first) == 1 and first[0].step == 0 and first[0].tensors[0].shape == (2, 1)
    assert not node.work()  # waits for the head's action
    act(node, 0, [1, 0])
    assert node.work()
    label = rt.of(Kind.LABEL, "head")[0]
    action, reward, done = label.tensors
    assert label.step == 0 and reward.tolist() == [1.0, 0.0] and done.tolist() == [0.0, 0.0]
    assert action.tolist() == [[0.0, 1.0], [1.0, 0.0]]  # one-hot: the context a sender's M may read
    assert rt.of(Kind.LABEL, "enc")[0].step == 0
    obs = rt.of(Kind.INPUT, "enc")[-1]
    assert obs.step == 1 and obs.tensors[0][:, 0].tolist() == pytest.approx([0.2, 0.0])


def test_episodes_are_recorded_and_the_final_evaluation_reports_returns() -> None:
    node, rt = env_node(threshold=4.0, window=2)
    for s in range(16):  # always right: an episode of 5 steps, return 5
        act(node, s, [1, 1])
        node.work()
    episodes = [m for v, m in rt.told if v == "metrics" and "returns" in m]
    assert episodes and episodes[0]["returns"] == [5.0, 5.0] and episodes[0]["lengths"] == [5, 5]
    act(node, 16, [1, 1])  # the action after the last rollout's update: evaluation starts
    assert node.work()
    for k in range(5):
        ev = rt.of(Kind.INPUT, "enc")[-1]
        assert ev.meta["phase"] == "eval" and ev.step == k and ev.tensors[0].shape == (3, 1)
        act(node, k, [1, 1, 1], phase="eval")
        node.work()
    result = next(m for v, m in rt.told if v == "eval")
    assert result["final"] and result["mean_return"] == 5.0 and result["episodes"] == 3
    assert result["env_steps"] == 32 and result["steps_to_threshold"] == 10
    assert ("complete", {"steps": 32}) in rt.told


@pytest.mark.parametrize(("action", "message"), [
    ([1, 0, 1], r"shape \[3\], expected \[2\]"),
    ([1, 2], r"action 2 of copy 1 is outside Discrete\(2\)"),
])
def test_bad_discrete_actions_are_named(action: list, message: str) -> None:
    node, _ = env_node()
    act(node, 0, action)
    with pytest.raises(ValueError, match=message):
        node.work()


def test_bad_box_actions_are_named() -> None:
    space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    with pytest.raises(ValueError, match=r"copy 1 is not finite"):
        check_action(space, torch.tensor([[0.1], [float("nan")]]), 2, "action from 'head' at step 3")
    with pytest.raises(ValueError, match=r"shape \[2\], expected \[2, 1\]"):
        check_action(space, torch.tensor([0.1, 0.2]), 2, "x")
    assert check_action(space, torch.tensor([[3.0], [-0.5]]), 2, "x").tolist() == [[1.0], [-0.5]]  # clipped


def test_an_env_that_raises_is_named_with_its_step() -> None:
    node, _ = env_node("tests.agents.rl_envs:Fragile")
    for s in range(2):
        act(node, s, [1, 1])
        node.work()
    act(node, 2, [1, 1])
    with pytest.raises(RuntimeError, match=r"env 'tests.agents.rl_envs:Fragile' failed at step 2 .*collapsed"):
        node.work()


def test_spaces_a_policy_can_serve() -> None:
    assert space_facts(make_vector_env("tests.agents.rl_envs:Reach", {}, 2)) == \
        {"obs_dim": 2, "continuous": True, "action_dim": 1}
    venv = make_vector_env("CartPole-v1", {}, 3)
    assert venv.num_envs == 3 and space_facts(venv)["action_dim"] == 2
    with pytest.raises(ValueError, match="action space MultiBinary"):
        space_facts(gym.vector.SyncVectorEnv([lambda: _MultiBinary()]))


class _MultiBinary(gym.Env):
    observation_space = gym.spaces.Box(0, 1, (1,), np.float32)
    action_space = gym.spaces.MultiBinary(2)
