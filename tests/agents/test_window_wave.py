"""Delayed true-gradient targets across a ticking middle level: with frozen weights the targets the middle level
sends down equal the true gradient of the top's loss (backprop through both windows); bootstrapped targets do
not; the kept windows are bounded. Tiny sizes: the file runs in about a second."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from agents import AgentSpec, EdgeSpec, Graph, TickingAgent, TickSchedule
from agents.multiscale import TickingCore
from agents.window_wave import WindowReplay, WindowWave
from interfaces import Kind, Message
from tests.agents.helpers import FakeRuntime

K = 4          # mid's window (ticks) and the top's period in mid ticks: periods 1, K, K * K
B = 3
D_IN = 5       # fast's act width (mid's input)
D_OUT = 6      # mid's act width (the top's input)
CLASSES = 3
FROZEN = {"name": "adam", "lr": 0.0}


def agents(target: str, probe: bool = False, capacity: int = 32) -> tuple[TickingAgent, FakeRuntime,
                                                                          TickingAgent, FakeRuntime]:
    """mid (period K, in-edge from a fast level) and the top (period K * K, head), both frozen (lr 0)."""
    fast = AgentSpec("fast", {"type": "ticking_lstm", "period": 1, "hidden": 4, "encoder": 0},
                     in_shape=(7,), out_shape=(D_IN,))
    mid = AgentSpec("mid", {"type": "ticking_lstm", "period": K, "hidden": 8, "flush": True}, optimizer=FROZEN,
                    in_shape=(D_IN,), out_shape=(D_OUT,))
    top = AgentSpec("top", {"type": "ticking_lstm", "period": K * K, "hidden": 10, "flush": False},
                    optimizer=FROZEN, in_shape=(D_OUT,), out_shape=(CLASSES,), head=True)
    synth: dict[str, Any] = {"lr": 1e-3, "hidden": [8], "target": target, "probe": probe}
    edges = [EdgeSpec("env", "fast"), EdgeSpec("fast", "mid", backward="dni", synthesizer=synth),
             EdgeSpec("mid", "top", backward="dni", synthesizer=dict(synth))]
    graph = Graph([fast, mid, top], edges, (7,), CLASSES)
    schedule = TickSchedule((1, K, K * K), K * K * K)  # one episode: K top ticks
    built = []
    for level, name in ((1, "mid"), (2, "top")):
        agent = TickingAgent(graph.agent(name), graph, level, schedule, CLASSES, seed=level, capacity=capacity)
        rt = FakeRuntime()
        agent.start(rt)
        built += [agent, rt]
    return tuple(built)  # type: ignore[return-value]


def top_ticks(target: str, probe: bool = False) -> tuple[list[Tensor], list[Message], TickingAgent,
                                                         TickingAgent, Tensor]:
    """Drive K top ticks: K mid windows of K acts each, a label at each of the top's ticks; returns the acts, the
    targets mid sent down, both agents (frozen: their cores as they were) and the labels [K, B]."""
    mid, mid_rt, top, top_rt = agents(target, probe)
    gen = torch.Generator().manual_seed(0)
    acts = [torch.randn(B, D_IN, generator=gen) for _ in range(K * K)]
    y = torch.randint(0, CLASSES, (K, B), generator=gen)
    for w in range(K):
        top.on_message(Message(Kind.LABEL, "env", "env->top", K * K * w + K * K - 1, [y[w]]))
    for i, a in enumerate(acts):
        mid.on_message(Message(Kind.ACT, "fast", "fast->mid", K * i + K - 1, [a]))
    while mid.work():
        pass
    for m in mid_rt.of(Kind.ACT, "top"):
        top.on_message(m)
    while top.work():
        pass
    for m in top_rt.of(Kind.TARGET, "mid"):  # the top's true dL/d(mid's act), once per mid window
        mid.on_message(m)
    return acts, mid_rt.of(Kind.TARGET, "fast"), mid, top, y


def true_gradient(acts: list[Tensor], mid: TickingAgent, top: TickingAgent, y: Tensor) -> list[Tensor]:
    """dL/d(act) by plain backprop through each mid window and the top tick it feeds, at the same weights."""
    mid_core, top_core = copy.deepcopy(mid.core), copy.deepcopy(top.core)
    xs = [a.clone().requires_grad_(True) for a in acts]
    outs = []
    for w in range(K):
        state = mid_core.zero_state(B, torch.device("cpu"))
        for p in range(K):
            state = mid_core.step(xs[w * K + p], p, state)
        outs.append(mid_core.readout(state[0]))
    state = top_core.zero_state(B, torch.device("cpu"))
    loss = torch.zeros(())
    for w, out in enumerate(outs):  # the top ticks once per mid window, its window is one tick (state detached)
        state = top_core.step(out, 0, (state[0].detach(), state[1].detach()))
        loss = loss + F.cross_entropy(top_core.readout(state[0]), y[w])
    return list(torch.autograd.grad(loss, xs))


def test_delayed_targets_equal_the_true_gradient_with_frozen_weights() -> None:
    acts, sent, mid, top, y = top_ticks("delayed")
    truth = true_gradient(acts, mid, top, y)
    assert [m.step for m in sent] == [K * i + K - 1 for i in range(K * K)]  # one per act, at its step
    for msg, expected in zip(sent, truth, strict=True):
        assert msg.edge == "fast->mid" and msg.tensors[0].shape == (B, D_IN)
        torch.testing.assert_close(msg.tensors[0], expected)
    assert all(float(g.abs().sum()) > 0 for g in truth)
    assert mid.wave.dropped == 0 and mid.wave.unmatched == 0


def test_delayed_targets_wait_for_the_target_of_the_output() -> None:
    mid, mid_rt, _, _ = agents("delayed")
    for i in range(K):
        mid.on_message(Message(Kind.ACT, "fast", "fast->mid", K * i + K - 1, [torch.randn(B, D_IN)]))
    while mid.work():
        pass
    assert mid.updates == 1 and not mid_rt.of(Kind.TARGET)  # updated on M(out) at once, nothing sent down yet
    mid.on_message(Message(Kind.TARGET, "top", "mid->top", K * K - 1, [torch.randn(B, D_OUT)]))
    assert [m.step for m in mid_rt.of(Kind.TARGET, "fast")] == [K * i + K - 1 for i in range(K)]


def test_bootstrapped_targets_are_not_the_true_gradient_and_the_probe_says_so() -> None:
    acts, sent, mid, top, y = top_ticks("bootstrap", probe=True)
    truth = true_gradient(acts, mid, top, y)
    # M starts at zero: the bootstrapped targets sent at once are zero, not the true gradient
    assert len(sent) == K * K and all(float(m.tensors[0].abs().sum()) == 0 for m in sent)
    assert sum(float(g.abs().sum()) for g in truth) > 0
    assert "wave/bootstrap_cosine" in mid.means.pop()  # the probe compared them when the true target came


def test_the_kept_windows_are_bounded() -> None:
    core = TickingCore(D_IN, 8, D_OUT, phases=K)
    wave = WindowWave(core, K, D_IN, "mid->top", capacity=3)
    state = core.zero_state(B, torch.device("cpu"))
    for w in range(5):  # 5 windows into a store of 3: the two oldest are dropped and counted
        wave.remember(16 * w + 15, state, [torch.randn(B, D_IN) for _ in range(K)], torch.randn(B, D_OUT))
    assert wave.dropped == 2 and len(wave.wave.store) == 3 and len(wave.applied) == 3
    assert wave.resolve(15, torch.randn(B, D_OUT)) is None and wave.unmatched == 1  # evicted: counted, no target
    grads, probe = wave.resolve(16 * 4 + 15, torch.randn(B, D_OUT))
    assert len(grads) == K and all(g.shape == (B, D_IN) for g in grads) and probe is not None
    assert wave.resolve(16 * 4 + 15, torch.randn(B, D_OUT)) is None and wave.unmatched == 2  # only once


def test_window_replay_is_the_window() -> None:
    core = TickingCore(D_IN, 8, D_OUT, phases=K)
    state = (torch.randn(B, 8), torch.randn(B, 8))
    xs = [torch.randn(B, D_IN) for _ in range(K)]
    replay = WindowReplay(core, K, D_IN)
    expected = state
    for p, x in enumerate(xs):
        expected = core.step(x, p, expected)
    torch.testing.assert_close(replay(WindowReplay.pack(state, xs)), core.readout(expected[0]))
