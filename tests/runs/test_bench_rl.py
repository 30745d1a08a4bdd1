"""``bench rl``'s single-process reference: the recipe's network and PPO as one plain loop."""

from __future__ import annotations

from pathlib import Path

import torch

from runs.bench.rl import PlainPolicy, bench_recipe, plain_ppo
from runs.execute import plan_recipe

RECIPE = str(Path(__file__).resolve().parents[2] / "runs" / "cartpole-ppo-dni.toml")
CORRIDOR = ['env.id="tests.agents.rl_envs:Corridor"', "env.kwargs={length=4}", "env.num_envs=2", "ppo.num_steps=32",
            "env.eval_episodes=3", "env.threshold=3.0", "env.window=4"]


def test_the_plain_policy_is_the_split_network() -> None:
    _, plan = plan_recipe(bench_recipe(RECIPE, 512))
    policy = PlainPolicy(plan)
    sizes = [tuple(p.shape) for p in policy.parameters()]
    assert sizes == [(64, 4), (64,), (64, 4), (64,),                    # encoder: actor and critic first layers
                     (64, 64), (64,), (2, 64), (2,), (64, 64), (64,), (1, 64), (1,)]  # head: the rest


def test_the_plain_loop_learns_a_corridor() -> None:
    torch.set_num_threads(1)
    row = plain_ppo(bench_recipe(RECIPE, 1024, CORRIDOR))
    assert row["env_steps"] == 1024 and row["episodes"] == 3 and row["env_steps_per_s"] > 0
    assert row["mean_return"] == 4.0 and row["steps_to_threshold"] is not None
