"""``bench rl``: an RL recipe as dnilab agents against the same PPO as one plain PyTorch loop.

Why: splitting a policy into processes costs a message round trip per env step; this measures that cost
(env steps per second) and what the split's backward mode does to sample efficiency (env steps to the
recipe's threshold, final deterministic return) beside the loop a user would write instead: CleanRL's
``ppo.py`` with the recipe's network (``PolicyEncoder`` + ``ActorCritic``, the same initialisation), its
hyper-parameters, the same minibatch order and the same evaluation (``eval_episodes`` separately seeded
copies, the policy's mode). The plain loop clips the gradient norm of the whole network, as CleanRL does;
the agents clip their own. Rows carry ``ratio`` = env steps/s against the plain loop's, measured in turn
on the same machine.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agents import ActorCritic, PolicyEncoder, gae, make_vector_env, minibatch_order, ppo_loss, space_facts

from ..execute import plan_recipe
from ..recipe import RecipeError, apply_overrides, read_recipe
from ..records import read_jsonl
from .runner import run_recipe
from .table import Row

COLUMNS = ["recipe", "system", "mode", "env_steps", "train_s", "env_steps_per_s", "ratio", "steps_to_threshold",
           "mean_return"]
EVAL_SEED_OFFSET = 1_000_000  # as the env node: evaluation copies never share a seed with training copies


class PlainPolicy(nn.Module):
    """The recipe's encoder stages and head as one module."""

    def __init__(self, plan: Any) -> None:
        super().__init__()
        towers = plan.recipe.ppo.towers
        stages, in_dim = [], plan.facts["obs_dim"]
        for i, agent in enumerate(plan.chain[:-1]):
            stages.append(PolicyEncoder(in_dim, agent.hidden, towers, split=i > 0))
            in_dim = agent.hidden[-1] * towers
        self.encoder = nn.Sequential(*stages)
        self.head = ActorCritic(in_dim, plan.chain[-1].hidden, plan.facts["action_dim"], plan.facts["continuous"],
                                towers)


def evaluate(policy: PlainPolicy, env: Any, seed: int) -> dict[str, float]:
    """One episode on each of ``env.eval_episodes`` copies with the policy's mode (the env node's evaluation)."""
    venv = make_vector_env(env.id, env.kwargs, env.eval_episodes)
    obs, _ = venv.reset(seed=seed + EVAL_SEED_OFFSET)
    n = env.eval_episodes
    returns, finished = np.zeros(n), np.zeros(n, dtype=bool)
    for _ in range(env.eval_max_steps):
        with torch.no_grad():
            action, _, _ = policy.head.act(policy.encoder(torch.as_tensor(obs, dtype=torch.float32).reshape(n, -1)),
                                           deterministic=True)
        a = action.numpy()
        if policy.head.continuous:
            a = np.clip(a, venv.single_action_space.low, venv.single_action_space.high)
        obs, reward, terminated, truncated, _ = venv.step(a)
        returns[~finished] += reward[~finished]
        finished |= np.logical_or(terminated, truncated)
        if finished.all():
            break
    venv.close()
    return {"mean_return": float(returns.mean()), "episodes": int(finished.sum())}


def plain_ppo(recipe: dict[str, Any]) -> Row:
    """CleanRL's PPO loop on the recipe's network and hyper-parameters, in this process (one torch thread)."""
    recipe, plan = plan_recipe(copy.deepcopy(recipe))
    model = plan.recipe
    ppo, env, seed = model.ppo, model.env, model.run.seed
    torch.manual_seed(seed)
    policy = PlainPolicy(plan)
    optimizer = torch.optim.Adam(policy.parameters(), lr=ppo.lr, eps=1e-5)
    venv = make_vector_env(env.id, env.kwargs, env.num_envs)
    facts = space_facts(venv)
    t_steps, n = ppo.num_steps, env.num_envs
    batch, size = t_steps * n, t_steps * n // ppo.num_minibatches
    obs_buf = torch.zeros(t_steps, n, facts["obs_dim"])
    act_buf = torch.zeros(t_steps, n, facts["action_dim"]) if facts["continuous"] else torch.zeros(t_steps, n).long()
    logp_buf, val_buf, rew_buf, done_buf = (torch.zeros(t_steps, n) for _ in range(4))
    obs, _ = venv.reset(seed=seed)
    recent: deque[float] = deque(maxlen=env.window)
    reached: int | None = None
    t0 = time.perf_counter()
    for rollout in range(plan.rollouts):
        for group in optimizer.param_groups:
            group["lr"] = ppo.lr_at(rollout, plan.rollouts)
        for t in range(t_steps):
            x = torch.as_tensor(obs, dtype=torch.float32).reshape(n, -1)
            with torch.no_grad():
                action, logp, value = policy.head.act(policy.encoder(x))
            obs_buf[t], act_buf[t], logp_buf[t], val_buf[t] = x, action, logp, value
            a = action.numpy()
            if facts["continuous"]:
                a = np.clip(a, venv.single_action_space.low, venv.single_action_space.high)
            obs, reward, terminated, truncated, info = venv.step(a)
            rew_buf[t] = torch.as_tensor(reward, dtype=torch.float32)
            done_buf[t] = torch.as_tensor(np.logical_or(terminated, truncated), dtype=torch.float32)
            if "episode" in info:
                recent.extend(float(r) for r in info["episode"]["r"][info["_episode"]])
                if (reached is None and env.threshold is not None and len(recent) == recent.maxlen
                        and np.mean(recent) >= env.threshold):
                    reached = (rollout * t_steps + t + 1) * n
        with torch.no_grad():
            next_value = policy.head(policy.encoder(torch.as_tensor(obs, dtype=torch.float32).reshape(n, -1)))[1]
        adv, returns = gae(rew_buf, val_buf, done_buf, next_value, ppo.gamma, ppo.gae_lambda)
        flat = {"obs": obs_buf.reshape(batch, -1), "actions": act_buf.reshape(batch, *act_buf.shape[2:]),
                "logp": logp_buf.reshape(batch), "adv": adv.reshape(batch), "returns": returns.reshape(batch),
                "values": val_buf.reshape(batch)}
        for idx in minibatch_order(seed, rollout, ppo.update_epochs, batch, size):
            loss, _ = ppo_loss(policy.head, policy.encoder(flat["obs"][idx]), flat["actions"][idx], flat["logp"][idx],
                               flat["adv"][idx], flat["returns"][idx], flat["values"][idx], ppo)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(policy.parameters(), ppo.max_grad_norm)
            optimizer.step()
    train_s = time.perf_counter() - t0
    venv.close()
    steps = plan.rollouts * batch
    return {"env_steps": steps, "train_s": train_s, "env_steps_per_s": steps / train_s,
            "steps_to_threshold": reached, **evaluate(policy, env, seed)}


def dnilab_ppo(recipe: dict[str, Any], out: Path) -> Row:
    """The recipe as dnilab agents (local processes); training time from the env node's own clock."""
    res = run_recipe(recipe, out)
    ev = res.summary["eval"]
    rows = [r for r in read_jsonl(res.run_dir / "metrics" / "env.jsonl") if "steps" in r]
    train_s = ev["wall_s"] - ev["eval_s"] if "eval_s" in ev else (rows[-1]["wall_s"] if rows else float("nan"))
    return {"env_steps": ev["env_steps"], "train_s": train_s, "env_steps_per_s": ev["env_steps"] / train_s,
            "steps_to_threshold": ev.get("steps_to_threshold"), "mean_return": ev["mean_return"],
            "episodes": ev["episodes"], "run_dir": str(res.run_dir)}


def bench_recipe(path: str, steps: int, overrides: Sequence[str] = ()) -> dict[str, Any]:
    recipe = apply_overrides(read_recipe(path), list(overrides))
    recipe.setdefault("run", {}).update(steps=steps, name=f"bench-{Path(path).stem}", launcher="local")
    return recipe


def bench_rl(recipes: Sequence[str], steps: int, overrides: Sequence[str] = (), out: Path | None = None,
             plain: bool = True) -> list[Row]:
    """Per recipe, the plain loop (once, for the first recipe of each env) and the dnilab system."""
    out = Path(out or tempfile.mkdtemp(prefix="dnilab-bench-rl-"))
    built = [(path, bench_recipe(path, steps, overrides)) for path in recipes]
    for path, recipe in built:  # a bad recipe or override is rejected before anything runs
        _, plan = plan_recipe(copy.deepcopy(recipe))
        if plain and any(a.kind == "recurrent" for a in plan.chain):
            raise RecipeError(f"{path}: the plain loop has no recurrent agent (run it with --no-plain, or dnilab run)")
    torch.set_num_threads(1)
    rows: list[Row] = []
    baselines: dict[str, float] = {}
    for path, recipe in built:
        name, env_id = Path(path).stem, recipe["env"]["id"]
        mode = next((e.get("backward") for e in recipe.get("edges", []) if e.get("from") != "env" and "backward" in e),
                    recipe.get("defaults", {}).get("edge", {}).get("backward", "backprop"))
        if plain and env_id not in baselines:
            row = plain_ppo(recipe)
            baselines[env_id] = row["env_steps_per_s"]
            rows.append({"recipe": name, "system": "plain", "mode": "one process", **row, "ratio": 1.0})
        row = dnilab_ppo(recipe, out / name)
        base = baselines.get(env_id)
        rows.append({"recipe": name, "system": "dnilab", "mode": mode, **row,
                     "ratio": row["env_steps_per_s"] / base if base else None})
    return rows
