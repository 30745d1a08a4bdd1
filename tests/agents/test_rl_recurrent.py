"""The slow recurrent agent of the masked-CartPole hierarchy: ticks, resets, held context, and PPO's replay
of a rollout from its stored entry state (the same contexts as acting, per group of env copies)."""

from __future__ import annotations

import torch

from agents import PpoConfig, RecurrentStage, SlowCore
from interfaces import Kind, Message
from tests.agents.helpers import FakeRuntime

T, N, D, H = 6, 4, 2, 5
PPO = PpoConfig(num_steps=T, num_minibatches=2, update_epochs=1, towers=1).model_dump()
FACTS = {"obs_dim": D, "continuous": False, "action_dim": 2}
SLOW = {"name": "slow", "kind": "recurrent", "hidden": [H], "period": 2}


def test_the_core_ticks_every_period_steps_of_an_episode_and_resets_at_its_start() -> None:
    torch.manual_seed(0)
    core = SlowCore(D, H, period=3)
    state = core.initial(2)
    contexts = []
    starts = [[True, True], [False, False], [False, True], [False, False], [False, False]]
    for start in starts:
        state, c = core(state, torch.randn(2, D), torch.tensor(start))
        contexts.append(c)
    a = [c[0] for c in contexts]  # copy 0: ticks at its steps 0 and 3
    assert torch.equal(a[0], a[1]) and torch.equal(a[1], a[2]) and not torch.equal(a[2], a[3])
    b = [c[1] for c in contexts]  # copy 1: a new episode at step 2 ticks at once from a zero state
    assert not torch.equal(b[1], b[2]) and torch.equal(b[2], b[3]) and torch.equal(b[3], b[4])
    assert torch.equal(state[2], torch.tensor([4, 2]))  # age in the episode


def stage(mode: str) -> tuple[RecurrentStage, FakeRuntime]:
    node = RecurrentStage(SLOW, {"from": "env", "to": "slow"}, {"from": "slow", "to": "head", "backward": mode},
                          PPO, FACTS, in_dim=D, num_envs=N, rollouts=3)
    rt = FakeRuntime()
    node.start(rt)
    return node, rt


def feed(node: RecurrentStage, steps: range) -> None:
    """Observations with labels; copy 1 ends an episode at step 2."""
    for s in steps:
        node.on_message(Message(Kind.INPUT, "env", "env->slow", s, [torch.randn(N, D)], {"phase": "act"}))
        while node.work():
            pass
        done = torch.zeros(N)
        done[1] = float(s == 2)
        node.on_message(Message(Kind.LABEL, "env", "env->slow", s, [torch.zeros(N, 2), torch.ones(N), done]))


def acts(rt: FakeRuntime, phase: str) -> list[Message]:
    return [m for m in rt.of(Kind.ACT, "head") if m.meta["phase"] == phase]


def test_the_replay_gives_the_contexts_the_controller_acted_on() -> None:
    node, rt = stage("backprop")
    feed(node, range(T + 1))  # step T ends rollout 0
    acted = torch.stack([m.tensors[0] for m in acts(rt, "act")]).reshape(T * N, D + H)  # rows t N + n
    first = acts(rt, "update")[0]
    rows, idx = first.tensors
    assert rows.shape == (T * N // 2, D + H) and len(set(idx.tolist())) == T * N // 2
    assert torch.allclose(rows, acted[idx], atol=1e-6)  # obs passed through, the same context replayed
    assert len({int(i) % N for i in idx}) == N // 2  # a group of env copies, every step of the rollout


def test_a_backprop_slow_agent_waits_and_learns_from_the_context_part_of_the_gradient() -> None:
    node, rt = stage("backprop")
    feed(node, range(T + 1))
    assert [m.meta["phase"] for m in rt.of(Kind.ACT, "head")][-2:] == ["bootstrap", "update"]
    before = [p.detach().clone() for p in node.module.parameters()]
    target = torch.zeros(T * N // 2, D + H)
    target[:, :D] = 1e3  # the observation's part: not the slow agent's
    node.on_message(Message(Kind.TARGET, "head", "slow->head", 0, [target]))
    assert all(torch.equal(a, b) for a, b in zip(before, node.module.parameters()))  # nothing reached it
    target[:, D:] = 1.0
    while node.work():
        pass
    node.on_message(Message(Kind.TARGET, "head", "slow->head", 1, [target]))
    while node.work():
        pass
    assert node.updates == 2 and any(not torch.equal(a, b) for a, b in zip(before, node.module.parameters()))
    assert [m.meta["phase"] for m in rt.of(Kind.ACT, "head")][-1] == "act"  # the boundary again


def test_a_dni_slow_agent_updates_at_once_and_m_learns_from_the_context_gradient() -> None:
    node, rt = stage("dni")
    feed(node, range(T + 1))
    assert [m.meta["phase"] for m in rt.of(Kind.ACT, "head")][-4:] == ["bootstrap", "update", "update", "act"]
    assert node.updates == 2
    for k in (0, 1):
        node.on_message(Message(Kind.TARGET, "head", "slow->head", k, [torch.ones(T * N // 2, D + H)]))
    assert node.sg.trained == 2 and node.sg.unmatched == 0


def test_evaluation_copies_start_from_a_fresh_state() -> None:
    node, rt = stage("dni")
    feed(node, range(3))
    x = torch.randn(3, D)
    node.on_message(Message(Kind.INPUT, "env", "env->slow", 0, [x], {"phase": "eval", "round": 0}))
    assert node.work()
    out = rt.of(Kind.ACT, "head")[-1]
    _, context = node.module(node.module.initial(3), x, torch.ones(3, dtype=torch.bool))
    assert out.meta == {"phase": "eval", "round": 0} and torch.allclose(out.tensors[0][:, D:], context)


def test_the_replay_calls_the_cell_at_ticks_only_and_matches_stepping() -> None:
    torch.manual_seed(1)
    core = SlowCore(D, H, period=3)
    steps, n = 9, 3
    obs, starts = torch.randn(steps, n, D), torch.zeros(steps, n, dtype=torch.bool)
    starts[0], starts[4, 1] = True, True
    state = core.initial(n)
    stepped, windows, ticks = [], [], []
    for t in range(steps):
        state, c = core(state, obs[t], starts[t])
        stepped.append(c)
        windows.append(state[1].flatten(1))
        ticks.append(state[2] % 3 == 0)
    replayed = core.replay(torch.zeros(n, H), torch.stack(windows), torch.stack(ticks), starts)
    assert torch.allclose(replayed, torch.stack(stepped), atol=1e-6)
