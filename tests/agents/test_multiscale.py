"""Multi-timescale agents: tick schedule, tick alignment, rejection of wrong steps, and that the fast agent
keeps ticking (DNI) or waits (backprop) while the slow one is slowed. Tiny sizes: the whole file runs in
seconds."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest
import torch
import zmq

from agents import AgentSpec, EdgeSpec, Graph, NodeSpec, Supervisor, TickingAgent, TickSchedule, Wiring
from agents.multiscale import SharedInputSynthesizer, pool_images, pooled_dim
from agents.process import serve
from interfaces import Kind, Message, WireError
from tests.agents.helpers import FakeRuntime

K = 4
B = 3
PIX = 784


def chain(mode: str, k: int = K, out: int = 5, episode_length: int = 8 * K,
          synthesizer: dict[str, Any] | None = None) -> tuple[Graph, TickSchedule]:
    """fast (period 1) -> slow (period k, head with k + 1 classes)."""
    fast = AgentSpec("fast", {"type": "ticking_lstm", "period": 1, "hidden": 6, "encoder": 7, "flush": True},
                     in_shape=(PIX,), out_shape=(out,))
    slow = AgentSpec("slow", {"type": "ticking_lstm", "period": k, "hidden": 8, "flush": False},
                     in_shape=(out,), out_shape=(k + 1,), head=True)
    edges = [EdgeSpec("env", "fast"), EdgeSpec("fast", "slow", backward=mode, synthesizer=synthesizer or {"lr": 1e-3})]
    return Graph([fast, slow], edges, (PIX,), k + 1), TickSchedule((1, k), episode_length)


def make_agent(name: str, mode: str, synthesizer: dict[str, Any] | None = None,
               **kw: Any) -> tuple[TickingAgent, FakeRuntime]:
    graph, schedule = chain(mode, synthesizer=synthesizer)
    level = 0 if name == "fast" else 1
    agent = TickingAgent(graph.agent(name), graph, level, schedule, K + 1, group=K if mode == "backprop" else 0,
                         **kw)
    rt = FakeRuntime()
    agent.start(rt)
    return agent, rt


def inputs(steps: range) -> list[Message]:
    gen = torch.Generator().manual_seed(0)
    return [Message(Kind.INPUT, "env", "env->fast", s, [torch.rand(B, PIX, generator=gen)]) for s in steps]


def drain(agent: TickingAgent) -> int:
    n = 0
    while agent.work():
        n += 1
    return n


def test_schedule_ticks_windows_and_groups() -> None:
    sched = TickSchedule((1, 4, 16), 64, top_window=2)
    assert sched.ticks(1, 0, 16) == [3, 7, 11, 15]
    assert sched.ticks(2, 0, 40) == [15, 31]
    assert [sched.window(i) for i in range(3)] == [4, 4, 2]
    # backprop into the top: level 1 holds one top window (2 x 16 steps); level 0 inherits it when
    # level 1 waits itself, else one level-1 window (16 steps)
    assert sched.group(1, ["backprop", "backprop", "head"]) == 32
    assert sched.group(0, ["backprop", "backprop", "head"]) == 32
    assert sched.group(0, ["backprop", "dni", "head"]) == 16
    with pytest.raises(ValueError, match="multiple of the previous"):
        TickSchedule((1, 4, 6), 48)
    with pytest.raises(ValueError, match="period 1"):
        TickSchedule((2, 4), 16)
    with pytest.raises(ValueError, match="episode_length"):
        TickSchedule((1, 4), 18)


def test_fast_agent_emits_exactly_at_the_slow_ticks() -> None:
    agent, rt = make_agent("fast", "dni")
    reference = copy.deepcopy(agent.core)  # M starts at zero: the fast core's weights do not move yet
    msgs = inputs(range(3 * K))
    for m in msgs:
        agent.on_message(m)
    for _ in range(3):  # the slow agent consumes each act
        agent.on_message(Message(Kind.CONTROL, "slow", "fast->slow", 0, [], {"verb": "ack"}))
    drain(agent)
    acts = rt.of(Kind.ACT, "slow")
    assert [a.step for a in acts] == [K - 1, 2 * K - 1, 3 * K - 1]
    for w, act in enumerate(acts):
        state = reference.zero_state(B, torch.device("cpu"))
        with torch.no_grad():
            for p in range(K):
                state = reference.step(msgs[w * K + p].tensors[0], p, state)
            expected = reference.readout(state[0])
        torch.testing.assert_close(act.tensors[0], expected)
    assert len([m for p, m in rt.sent if m.meta.get("verb") == "ack" and p == "env"]) == 3 * K


def test_slow_agent_consumes_its_ticks_and_rejects_other_steps() -> None:
    agent, rt = make_agent("slow", "dni")
    for s in range(2 * K):
        agent.on_message(Message(Kind.LABEL, "env", "env->slow", s, [torch.full((B,), 2 if s % K == K - 1 else -1)]))
    for s in (K - 1, 2 * K - 1):
        agent.on_message(Message(Kind.ACT, "fast", "fast->slow", s, [torch.randn(B, 5)]))
    assert drain(agent) == 2
    targets = rt.of(Kind.TARGET, "fast")
    assert [t.step for t in targets] == [K - 1, 2 * K - 1]
    assert all(t.tensors[0].shape == (B, 5) and t.tensors[0].abs().sum() > 0 for t in targets)
    assert agent.updates == 2
    with pytest.raises(WireError) as err:  # not one of the slow agent's ticks
        agent.on_message(Message(Kind.ACT, "fast", "fast->slow", 2 * K + 1, [torch.randn(B, 5)]))
    assert (err.value.sender, err.value.edge, err.value.step) == ("fast", "fast->slow", 2 * K + 1)
    assert "not a tick" in str(err.value)
    with pytest.raises(WireError, match="out of order"):  # a step it has already seen
        agent.on_message(Message(Kind.ACT, "fast", "fast->slow", K - 1, [torch.randn(B, 5)]))


def test_fast_agent_rejects_a_target_for_a_step_it_did_not_emit() -> None:
    agent, _ = make_agent("fast", "dni")
    with pytest.raises(WireError, match="not an output tick"):
        agent.on_message(Message(Kind.TARGET, "slow", "fast->slow", 1, [torch.zeros(B, 5)]))


def test_dni_fast_agent_never_waits_for_the_slow_one() -> None:
    agent, rt = make_agent("fast", "dni", window=100)
    for m in inputs(range(5 * K)):
        agent.on_message(m)
    assert drain(agent) == 5 * K  # no target ever came back: it ticked through everything
    assert agent.updates == 5 and agent.max_lead == 5 * K


@pytest.mark.parametrize(
    "context, extra", [("none", 0), ("state", 6), ("window", 6 + K * 7), ("inputs", 6 + K * PIX)]
)
def test_dni_synthesizer_reads_its_context_and_learns_from_the_target(context: str, extra: int) -> None:
    # M(out[, h[, e_1..e_K or x_1..x_K]]): hidden 6, encoder 7, K ticks per window (see chain)
    agent, _ = make_agent("fast", "dni", synthesizer={"lr": 1e-3, "context": context})
    assert agent.sg.module.context_dim == extra
    for m in inputs(range(K)):
        agent.on_message(m)
    assert drain(agent) == K and agent.sg.trained == 0
    agent.on_message(Message(Kind.TARGET, "slow", "fast->slow", K - 1, [torch.randn(B, 5)]))
    assert agent.sg.trained == 1


def test_shared_input_synthesizer_reads_each_input_through_one_encoder() -> None:
    # context = "inputs" with encoder = 3: the K raw inputs share one Linear(PIX, 3); M starts at exactly 0
    agent, _ = make_agent("fast", "dni", synthesizer={"lr": 1e-3, "context": "inputs", "encoder": 3})
    module = agent.sg.module
    assert isinstance(module, SharedInputSynthesizer) and module.context_dim == 6 + K * PIX
    out, context = torch.randn(B, 5), torch.randn(B, 6 + K * PIX)
    assert torch.equal(module(out, context), torch.zeros(B, 5))
    for m in inputs(range(K)):
        agent.on_message(m)
    drain(agent)
    agent.on_message(Message(Kind.TARGET, "slow", "fast->slow", K - 1, [torch.randn(B, 5)]))
    assert agent.sg.trained == 1 and module.encoder[0].weight.grad is not None  # the encoder learns too
    swapped = context.clone()  # the same inputs in another order give another prediction: each is read
    swapped[:, 6:6 + PIX], swapped[:, 6 + PIX:6 + 2 * PIX] = context[:, 6 + PIX:6 + 2 * PIX], context[:, 6:6 + PIX]
    assert not torch.allclose(module(out, context), module(out, swapped))


def test_pool_images_averages_blocks_of_square_images() -> None:
    x = torch.arange(16.0).reshape(1, 16)  # one 4 x 4 image, rows 0-3, 4-7, ...
    assert torch.equal(pool_images(x, 2), torch.tensor([[2.5, 4.5, 10.5, 12.5]]))
    assert pool_images(x, 1) is x and pooled_dim(784, 2) == 196 and pooled_dim(32, 1) == 32
    for bad in ((784, 3), (32, 2)):  # 28 is not a multiple of 3; 32 is not a square
        with pytest.raises(ValueError, match="square images"):
            pooled_dim(*bad)


def test_pooled_inputs_are_what_m_reads() -> None:
    # pool = 2: M's context holds each raw input averaged 2 x 2 (784 -> 196 values), through the shared encoder
    agent, _ = make_agent("fast", "dni", synthesizer={"lr": 1e-3, "context": "inputs", "encoder": 3, "pool": 2})
    module = agent.sg.module
    assert isinstance(module, SharedInputSynthesizer) and module.encoder[0].in_features == PIX // 4
    msgs = inputs(range(K))
    for m in msgs:
        agent.on_message(m)
    drain(agent)
    _, context = agent.sg.buffer.pop(K - 1)
    expected = torch.cat([pool_images(m.tensors[0], 2) for m in msgs], 1)  # [B, K * 196]
    assert context.shape == (B, 6 + K * PIX // 4) and torch.equal(context[:, 6:], expected)


def test_dni_fast_agent_is_bounded_by_credits() -> None:
    agent, rt = make_agent("fast", "dni", window=2)
    for m in inputs(range(5 * K)):
        agent.on_message(m)
    drain(agent)
    assert len(rt.of(Kind.ACT)) == 2 and agent.last_step == 2 * K - 1  # the third window waits for an ack


def test_backprop_fast_agent_waits_for_the_true_gradient() -> None:
    agent, rt = make_agent("fast", "backprop")
    before = [p.detach().clone() for p in agent.core.parameters()]
    for m in inputs(range(3 * K)):
        agent.on_message(m)
    assert drain(agent) == K  # one window, then update-locked
    assert agent.updates == 0 and len(agent.pending) == 1
    agent.on_message(Message(Kind.TARGET, "slow", "fast->slow", K - 1, [torch.ones(B, 5)]))
    drain(agent)
    assert agent.updates >= 1 and agent.last_step == 2 * K - 1  # resolved, updated, next window held
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.core.parameters()))


def test_busy_counts_the_work_done_when_a_target_arrives() -> None:
    # backprop: the held window's backward runs in work() once its δ came; DNI: M learns when the target comes
    agent, _ = make_agent("fast", "backprop")
    for m in inputs(range(2 * K)):
        agent.on_message(m)
    drain(agent)
    agent.on_message(Message(Kind.TARGET, "slow", "fast->slow", K - 1, [torch.ones(B, 5)]))
    before = agent.busy_s
    assert agent.work() and not agent.pending and agent.busy_s > before  # that work() only resolved the window
    agent, _ = make_agent("fast", "dni")
    for m in inputs(range(K)):
        agent.on_message(m)
    drain(agent)
    before = agent.busy_s
    agent.on_message(Message(Kind.TARGET, "slow", "fast->slow", K - 1, [torch.randn(B, 5)]))
    assert agent.sg.trained == 1 and agent.busy_s > before


# ------------------------------------------------------------------ end to end: separate threads


class ThreadLauncher:
    """Each node in its own thread (same node code as processes; no spawn cost), over inproc sockets."""

    transport = "inproc"
    heartbeats = False

    def __init__(self, ctx: zmq.Context) -> None:
        self.ctx = ctx
        self.threads: dict[str, threading.Thread] = {}
        self.codes: dict[str, int | None] = {}

    def start(self, spec: NodeSpec, wiring: Wiring) -> None:
        def body() -> None:
            self.codes[spec.name] = serve(spec, wiring, None, self.ctx)

        self.codes[spec.name] = None
        self.threads[spec.name] = threading.Thread(target=body, daemon=True)
        self.threads[spec.name].start()

    def exitcodes(self) -> dict[str, int | None]:
        return dict(self.codes)

    def describe(self, name: str) -> dict:
        return {"thread": name}

    def pump(self) -> bool:
        return False

    def shutdown(self, timeout_s: float) -> None:
        for t in self.threads.values():
            t.join(timeout_s)


class Collect:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, dict[str, Any]]] = []

    def record(self, sender: str, verb: str, step: int, meta: dict[str, Any]) -> None:
        self.rows.append((sender, verb, meta))


def run_threads(mode: str, slow_stage_ms: float, steps: int = 12 * K) -> Collect:
    from runs.execute import plan_recipe
    from runs.multiscale_system import multiscale_specs

    recipe, plan = plan_recipe({
        "run": {"kind": "multiscale", "steps": steps, "window": 2, "metrics_every": 1000},
        "env": {"id": "dnilab/DigitStream-v0", "kwargs": {"k": K, "batch_size": B, "limit": 50},
                "eval": {"split": "test", "episode_length": 2 * K}},
        "defaults": {"edge": {"backward": mode}},
        "levels": {"fast": {"period": 1, "hidden": 6, "encoder": 7, "out": 5},
                   "slow": {"hidden": 8, "stage_ms": slow_stage_ms}},
    })
    rec = Collect()
    ctx = zmq.Context()
    outcome = Supervisor(multiscale_specs(recipe, plan, ""), ThreadLauncher(ctx), rec, f"t{mode}", ctx=ctx).run()
    ctx.destroy(linger=0)
    assert outcome.status == "completed", outcome.error
    return rec


def test_fast_agent_keeps_ticking_while_the_slow_one_is_slowed() -> None:
    torch.set_num_threads(1)
    stats = {}
    for mode in ("dni", "backprop"):
        rec = run_threads(mode, slow_stage_ms=40.0)
        done = {s: m for s, v, m in rec.rows if v == "done"}
        stats[mode] = done["fast"]["max_lead"]
        evals = [m for s, v, m in rec.rows if v == "eval" and s == "slow"]
        assert evals and evals[-1]["final"] and 0 <= evals[-1]["test_accuracy"] <= 100
    # DNI: the fast agent ran ahead of the newest δ by up to its credits (2 acts = 2 windows) + one window;
    # backprop: never more than its one held window.
    assert stats["backprop"] <= K
    assert stats["dni"] >= 2 * K
