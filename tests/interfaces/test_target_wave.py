"""The delayed target: the receiver keeps its input and, when every out-edge's target for a step is back,
sends J^T delta at its current weights, without moving BatchNorm's running statistics."""

from __future__ import annotations

import torch
from torch import nn

from interfaces import TargetWave


def block() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU())


def test_the_input_gradient_is_the_true_vjp_once_every_out_edge_is_back() -> None:
    module = block()
    wave = TargetWave(module, ["b->c", "b->d"], capacity=4)
    x = torch.randn(8, 6)
    wave.remember(3, x)
    d1, d2 = torch.randn(8, 5), torch.randn(8, 5)
    assert wave.add("b->c", 3, d1) is None          # still waiting for b->d
    got = wave.add("b->d", 3, d2)
    xr = x.clone().requires_grad_(True)
    module(xr).backward(d1 + d2)
    assert torch.allclose(got, xr.grad, atol=1e-6)


def test_running_statistics_and_parameter_gradients_are_left_alone() -> None:
    module = block()
    bn = module[1]
    before = bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked)
    wave = TargetWave(module, ["b->c"], capacity=4)
    wave.remember(0, torch.randn(8, 6))
    wave.add("b->c", 0, torch.randn(8, 5))
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1])
    assert int(bn.num_batches_tracked) == before[2]
    assert all(p.grad is None for p in module.parameters())


def test_unknown_steps_and_evictions_are_counted() -> None:
    wave = TargetWave(block(), ["b->c"], capacity=2)
    for step in range(3):
        wave.remember(step, torch.randn(4, 6))
    assert wave.dropped == 1
    assert wave.add("b->c", 0, torch.randn(4, 5)) is None  # evicted
    assert wave.add("b->x", 1, torch.randn(4, 5)) is None  # not an edge it waits on
    assert wave.unmatched == 2
    assert wave.add("b->c", 1, torch.randn(4, 5)) is not None  # the entry survived the stray target
