"""The boundary probe: its targets are DNI's targets, and its fits find a planted map and no more."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import environments
from agents.boundary_probe import boundary_pairs, fit_ceiling, score
from agents.recurrent_agent import setup_agent
from agents.recurrent_config import parse_recipe

torch.set_num_threads(1)

TEXT = "".join(f"{w} sat on the {m}; " for w, m in [("the cat", "mat"), ("a dog", "log"), ("my hen", "pen")] * 80)


def _agent(sg: str = "dni"):
    recipe = {
        "run": {"kind": "recurrent", "steps": 1},
        "env": {"id": "dnilab/CharLM-v0", "kwargs": {"text": TEXT}},
        "agent": {"hidden": 8, "window": 3, "batch_size": 2, "sg": sg, "sg_state": "h", "lr": 1e-12,
                  "sg_lr": 1e-12},
    }
    spec = parse_recipe(recipe)
    torch.manual_seed(0)
    env, agent = setup_agent(spec, environments.make, "cpu")
    return spec, env, agent


def test_next_window_target_is_the_dni_learners_target_with_m_at_zero() -> None:
    """With M = 0 (its zero init) and no learning, the learner's bootstrapped target at each boundary is the
    true gradient of the next window's loss into h: the probe's ``next_window`` rows, boundary by boundary."""
    spec, env, agent = _agent()
    warmup, n = 4, 5
    pairs = boundary_pairs(agent, env, 3, n, horizon=1, gamma=0.5, warmup=warmup)

    _, env2, agent2 = _agent()
    agent2.core.load_state_dict(agent.core.state_dict())
    agent2.readout.load_state_dict(agent.readout.state_dict())
    learner = agent2.learner
    from agents.recurrent_agent import WindowStream

    stream = WindowStream(env2)
    stream.reset()
    learner.start_episode(2)
    targets = []
    for _ in range(warmup + n):
        x, y, m, _ = stream.window(3)
        learner.train_window(agent2.x(x), agent2.y(y), agent2.m(m), False)
        targets.append(learner.last_target)
    # boundary i ends window warmup - 1 + i; the learner's target after window k is for the end of window k - 1
    for i in range(n):
        torch.testing.assert_close(pairs.next_window[i], targets[warmup + i], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(pairs.target, pairs.next_window)  # horizon 1: nothing further to discount


def test_discounted_target_adds_later_windows_times_gamma() -> None:
    _, env, agent = _agent("none")
    zero = boundary_pairs(agent, env, 3, 3, horizon=2, gamma=0.0)
    _, env, agent2 = _agent("none")
    agent2.core.load_state_dict(agent.core.state_dict())
    agent2.readout.load_state_dict(agent.readout.state_dict())
    half = boundary_pairs(agent2, env, 3, 3, horizon=2, gamma=0.5)
    torch.testing.assert_close(zero.target, zero.next_window)
    torch.testing.assert_close(half.next_window, zero.next_window)
    assert not torch.allclose(half.target, half.next_window)  # the second window's gradient reaches h


def test_the_split_running_out_is_a_clear_error() -> None:
    _, env, agent = _agent("none")
    with pytest.raises(ValueError, match="the split ended"):
        boundary_pairs(agent, env, 3, 100_000, horizon=2, gamma=0.5)


def _planted(n: int, snr: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, 6, generator=g)  # [N, B, D]
    a = torch.randn(6, 5, generator=g)
    signal = x @ a
    noise = torch.randn(n, 16, 5, generator=g) * signal.std() / snr**0.5
    return x, signal + noise, a


def test_linear_fit_recovers_a_planted_map_and_its_ceiling() -> None:
    x, y, a = _planted(200, snr=1 / 3)  # a quarter of the target's energy is predictable: cosine 0.5
    out = fit_ceiling(x, y, mlp_epochs=2)
    assert out["linear"]["test"]["cosine"] == pytest.approx(0.5, abs=0.05)
    assert out["linear"]["test"]["r2"] == pytest.approx(0.25, abs=0.05)
    assert abs(out["constant"]["test"]["cosine"]) < 0.1  # the target's mean says nothing here
    assert out["mlp"]["test"]["cosine"] > 0.3
    planted = nn.Linear(6, 5, bias=False)
    with torch.no_grad():
        planted.weight.copy_(a.T)
    out = fit_ceiling(x, y, mlp_epochs=0, online=planted)
    assert out["online"]["test"]["cosine"] == pytest.approx(out["linear"]["test"]["cosine"], abs=0.02)


def test_a_pure_noise_target_leaves_nothing_to_predict() -> None:
    x, _, _ = _planted(200, snr=1.0)
    y = torch.randn(200, 16, 5, generator=torch.Generator().manual_seed(1))
    out = fit_ceiling(x, y, mlp_epochs=0)
    assert out["linear"]["fit"]["cosine"] > 0  # the fit rows always look a little predictable
    assert abs(out["linear"]["test"]["cosine"]) < 0.05  # later rows do not


def test_score_matches_the_logged_agreement() -> None:
    t = torch.tensor([[3.0, 4.0]])
    s = score(t * 0.5, t)
    assert (s["cosine"], s["norm_ratio"], s["r2"]) == pytest.approx((1.0, 0.5, 0.75))
    with pytest.raises(ValueError, match="at least 3 boundaries"):
        fit_ceiling(torch.zeros(2, 2, 3), torch.zeros(2, 2, 3))
