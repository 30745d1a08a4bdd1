"""A slow recurrent agent that gives a fast controller its context: the hierarchy ``env -> slow -> controller``.

The slow agent (``RecurrentStage``, recipe kind ``recurrent``) is the first agent of the policy chain. Every
env step it receives the observation; every ``period`` steps of an episode (at the episode's steps 0, p,
2p, ...) it ticks: a GRU cell reads the last ``period`` observations of that episode (zeros before its start)
and updates its state ``h`` [N, H]; between ticks ``h`` is held. The state is reset at each episode start
(the env's done flags, which it receives as labels). The controller (the ``actor_critic`` head) acts on the
concat merge of the observation and the held context, ``[obs_t, h]`` [N, D + H], which the slow agent sends
as its act; the observation part is passed through and carries no gradient.

Recurrent state in PPO (CleanRL's ``ppo_atari_lstm.py``): the slow agent keeps each rollout's observations,
episode starts and the state it entered the rollout with. Its update minibatches are groups of env copies
(``num_envs / num_minibatches`` copies, every step of the rollout: the same ``idx`` protocol as
``agents.rl_policy``, the head does not know the difference); for each it replays the rollout from the
stored state with its current parameters and backpropagates through the whole rollout (``num_steps /
period`` ticks). Why this and not truncated windows: a rollout is short (tens of ticks), so the replay is
cheap, the gradient reaches every tick, and nothing but one state per copy per rollout is stored.

The edge to the controller has the usual backward modes: ``backprop`` waits for the controller's true
dL/d(context) for the minibatch; ``dni`` updates at once on M(context) (M linear or an MLP on the context
rows ``[T n, H]``), and the true dL/d(context) trains M when it comes back; ``none`` leaves the slow agent
random. At each rollout boundary the state the next rollout starts from is the one before the boundary
observation, and the boundary observation is processed again with the updated parameters (as the encoder
forwards it again), so acting and replay see the same inputs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from interfaces import Expectations, Kind, Message, TensorSpec

from .merge import merge_inputs, split_gradient
from .ppo import minibatch_order
from .rl_policy import ENV, PolicyStage

__all__ = ["RecurrentStage", "SlowCore"]

State = tuple[Tensor, Tensor, Tensor]  # (h [N, H], window [N, p, D], age in the episode [N] int64)


class SlowCore(nn.Module):
    """A GRU cell over the last ``period`` observations, ticking at steps 0, p, 2p, ... of each episode."""

    def __init__(self, obs_dim: int, hidden: int, period: int) -> None:
        super().__init__()
        self.obs_dim, self.hidden, self.period = obs_dim, hidden, period
        self.cell = nn.GRUCell(obs_dim * period, hidden)

    def initial(self, n: int) -> State:
        return (torch.zeros(n, self.hidden), torch.zeros(n, self.period, self.obs_dim),
                torch.zeros(n, dtype=torch.int64))

    def forward(self, state: State, obs: Tensor, start: Tensor) -> tuple[State, Tensor]:
        """One env step: obs [N, D], start [N] bool (obs is its episode's first) -> (new state, context [N, H])."""
        h, window, age = state
        keep = (~start).to(h.dtype)
        h = h * keep[:, None]
        window = torch.cat([window[:, 1:] * keep[:, None, None], obs[:, None]], dim=1)
        age = torch.where(start, torch.zeros_like(age), age + 1)
        tick = age % self.period == 0
        if bool(tick.any()):  # held otherwise (most steps of a small group of copies: skip the cell)
            h = torch.where(tick[:, None], self.cell(window.flatten(1), h), h)
        return (h, window, age), h

    def replay(self, h: Tensor, windows: Tensor, ticks: Tensor, starts: Tensor) -> Tensor:
        """The contexts [T, n, H] of a stored rollout from its entry state h [n, H], with gradients.
        ``windows`` [T, n, p D], ``ticks`` and ``starts`` [T, n] (bool) are what ``forward`` saw; they do not
        depend on the parameters, so only the tick steps call the cell (h is held in between, and an episode
        start is always a tick)."""
        states, last = [h], []
        for t, any_tick in enumerate(ticks.any(1).tolist()):
            if any_tick:
                fresh = self.cell(windows[t], h * (~starts[t]).to(h.dtype)[:, None])
                h = torch.where(ticks[t][:, None], fresh, h)
                states.append(h)
            last.append(len(states) - 1)
        return torch.stack(states)[torch.tensor(last)]


def _detached(state: State) -> State:
    return tuple(s.detach().clone() for s in state)  # type: ignore[return-value]


class RecurrentStage(PolicyStage):
    """The slow agent: acting on its held context, and PPO updates by replaying each rollout per env group."""

    def __init__(self, agent: dict[str, Any], in_edge: dict[str, Any], out_edge: dict[str, Any], ppo: dict[str, Any],
                 facts: dict[str, Any], in_dim: int, num_envs: int, rollouts: int, seed: int = 0,
                 order_seed: int = 0, run_dir: str | None = None) -> None:
        super().__init__(agent, in_edge, out_edge, ppo, facts, in_dim, num_envs, rollouts, seed, order_seed, run_dir)
        if not self.first:
            raise ValueError(f"{self.name}: a recurrent agent reads the environment (in-edge {self.in_edge.name})")
        if num_envs % self.ppo.num_minibatches:
            raise ValueError(f"{self.name}: ppo.num_minibatches ({self.ppo.num_minibatches}) must divide "
                             f"env.num_envs ({num_envs}): its minibatches are groups of env copies")
        self.out_dim = self.cfg.hidden[0]      # the context: what M predicts the gradient of
        self.sends = in_dim + self.out_dim     # the controller's input [obs, context]

    def _build_module(self) -> nn.Module:
        return SlowCore(self.in_dim, self.cfg.hidden[0], self.cfg.period)

    def expectations(self) -> Expectations:
        expect = Expectations()
        self._upstream_expect(expect)
        self._label_expect(expect)  # the done flags: where episodes start
        if self.out_edge.sends_targets:
            expect.allow(Kind.TARGET, self.out_edge.name, self.out_edge.to,
                         [TensorSpec(torch.float32, (None, self.sends))])
        return expect

    def start(self, rt) -> None:  # noqa: ANN001 - NodeRuntime
        super().start(rt)
        self.state = self.module.initial(self.n)
        self.eval_state: State | None = None
        self.rollout_data: tuple[Tensor, Tensor, State] | None = None  # obs [T, N, D], starts [T, N], entry state
        self.windows: Tensor | None = None     # [T, N, p D] the cell's inputs during the rollout
        self.ticks: Tensor | None = None       # [T, N] bool
        self.replay: tuple[Tensor, ...] | None = None  # the rollout being updated: obs, starts, windows, ticks, h

    # -- receiving -------------------------------------------------------------------------------------
    def _on_target(self, k: int, target: Tensor) -> None:
        """The controller's dL/d[obs, context]: the context's part is the slow agent's."""
        _, context = split_gradient("concat", target, [(self.in_dim,), (self.out_dim,)])
        super()._on_target(k, context)

    def _ready(self, msg: Message) -> bool:
        if self.pending is not None:
            return False  # update-locked
        phase = msg.meta.get("phase", "act")
        if phase == "act" and msg.step > 0 and not msg.meta.get("again"):
            return msg.step - 1 in self.labels  # was the previous step the end of an episode?
        return True

    # -- working ---------------------------------------------------------------------------------------
    def _process(self, msg: Message) -> None:
        phase = msg.meta.get("phase", "act")
        x = msg.tensors[0]
        if phase == "update":
            self._replay_update(msg.step, msg.meta["rollout"], x)
        elif phase == "eval":
            self._eval(msg.step, x, dict(msg.meta))
        elif msg.step and msg.step % self.ppo.num_steps == 0 and not msg.meta.get("again"):
            self._boundary(msg.step, x)
        else:
            self._act(msg.step, x)

    def _starts(self, step: int) -> Tensor:
        if step == 0:
            return torch.ones(self.n, dtype=torch.bool)
        return self.labels[step - 1][2] > 0.5

    def _emit(self, step: int, x: Tensor, context: Tensor, idx: Tensor, meta: dict[str, Any]) -> None:
        self._send(step, merge_inputs("concat", [x, context]), idx, meta)

    def _act(self, step: int, x: Tensor) -> None:
        t = step % self.ppo.num_steps
        p = self.cfg.period
        if t == 0:
            self.rollout_data = (torch.zeros(self.ppo.num_steps, self.n, self.in_dim),
                                 torch.zeros(self.ppo.num_steps, self.n, dtype=torch.bool), _detached(self.state))
            self.windows = torch.zeros(self.ppo.num_steps, self.n, p * self.in_dim)
            self.ticks = torch.zeros(self.ppo.num_steps, self.n, dtype=torch.bool)
        obs, starts, _ = self.rollout_data
        obs[t], starts[t] = x, self._starts(step)
        with torch.no_grad():
            self.state, context = self.module(self.state, x, starts[t])
        self.windows[t], self.ticks[t] = self.state[1].flatten(1), self.state[2] % p == 0
        self._emit(step, x, context, torch.arange(self.n), {"phase": "act"})

    def _boundary(self, step: int, x: Tensor) -> None:
        """The observation that ends rollout r: V's input (not committed), r's update, then act on it again."""
        with torch.no_grad():
            _, context = self.module(self.state, x, self._starts(step))
        self._emit(step, x, context, torch.arange(self.n), {"phase": "bootstrap"})
        rollout = step // self.ppo.num_steps - 1
        obs, starts, entry = self.rollout_data
        self.replay = (obs, starts, self.windows, self.ticks, entry[0])
        groups = minibatch_order(self.order_seed, rollout, self.ppo.update_epochs, self.n,
                                 self.n // self.ppo.num_minibatches)
        ahead = []
        for envs in groups:
            ahead.append(Message(Kind.INPUT, ENV, self.in_edge.name, self.k, [envs],
                                 {"phase": "update", "rollout": rollout}))
            self.k += 1
        ahead.append(Message(Kind.INPUT, ENV, self.in_edge.name, step, [x], {"phase": "act", "again": True}))
        self.queue.extendleft(reversed(ahead))
        for s in [s for s in self.labels if s < rollout * self.ppo.num_steps]:
            del self.labels[s]

    def _replay_update(self, k: int, rollout: int, envs: Tensor) -> None:
        """Replay the rollout for env copies ``envs`` from their stored state; rows are t-major [T n, ...]."""
        self._enter_rollout(rollout)
        obs, starts, windows, ticks, entry = self.replay
        contexts = self.module.replay(entry[envs], windows[:, envs], ticks[:, envs], starts[:, envs])
        context = contexts.reshape(-1, self.out_dim)                            # [T n, H]
        x = obs[:, envs].reshape(-1, self.in_dim)                               # [T n, D]
        idx = (torch.arange(self.ppo.num_steps)[:, None] * self.n + envs[None, :]).reshape(-1)
        self._emit(k, x, context.detach(), idx, {"phase": "update", "rollout": rollout})
        mode = self.out_edge.backward
        if mode == "backprop":
            self.pending = (k, x, context)
        elif mode in ("dni", "cdni"):
            context.backward(self.sg.predict(k, context.detach(), self._context(rollout, idx)))
            self._step(x, k)

    def _eval(self, step: int, x: Tensor, meta: dict[str, Any]) -> None:
        """Evaluation copies: their own state, every copy starting its one episode at step 0."""
        if step == 0:
            self.eval_state = self.module.initial(len(x))
        with torch.no_grad():
            self.eval_state, context = self.module(self.eval_state, x, torch.full((len(x),), step == 0))
        self._emit(step, x, context, torch.arange(len(x)), meta)
