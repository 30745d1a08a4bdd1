"""A PPO policy split into agents: encoder stages and an actor-critic head, each in its own process.

Messages of one rollout ``r`` (``T = ppo.num_steps`` vector steps of ``N`` env copies, steps ``rT .. rT+T``):

acting (forward-locked, no gradients)
    env --input(obs_s, phase act)--> encoder --act(h_s, idx)--> ... --> head --act(a_s)--> env;
    env --label(s) = (action, reward, done)--> head (and senders whose M reads a context).
    Every encoder keeps nothing but the first, which stores ``obs_s`` for the update.

bootstrap (step ``s = (r+1) T``)
    the first encoder forwards ``obs_s`` with phase ``bootstrap``: the head takes V(obs_s) with the
    parameters that acted, waits for the rollout's last reward, and computes GAE (CleanRL's order).

update (``update_epochs`` x ``num_minibatches`` minibatches ``k``)
    the first encoder draws each epoch's permutation of the ``T N`` samples from a generator seeded by
    (run seed, r, epoch), recomputes h = f(obs[idx]) with gradients and sends ``act(h, idx)`` with phase
    ``update``, step ``k`` (a count over the run); a later encoder does the same on what it receives.
    The head computes the PPO loss of minibatch ``idx``, updates, and sends ``target(dL/dh, k)`` back.
    On a ``backprop`` edge the sender waits for that target and updates with it (CleanRL's update, step for
    step, except that each agent clips its own gradient norm); on ``dni`` / ``cdni`` it updates at once on
    M(h[, c]) and goes on to the next minibatch, and the target trains M when it arrives; on ``none`` it
    never updates. Then it forwards ``obs_s`` again (phase ``act``) with its new parameters: the head's
    first action of rollout ``r + 1``.

evaluation (phase ``eval``): forwards without gradients; the head answers with the policy's mode.

Every agent processes what its upstream sends strictly in order (one queue), so the phases never mix.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils import clip_grad_norm_

from interfaces import Expectations, Kind, Message, SyntheticGradient, TensorSpec

from .checkpoints import write_checkpoint
from .feedforward import RunningMeans
from .node import Node
from .ppo import ActorCritic, PolicyEncoder, PpoConfig, explained_variance, gae, minibatch_order, ppo_loss
from .rl_config import RlAgentConfig, RlEdgeConfig, context_dim

__all__ = ["PolicyHead", "PolicyStage"]

ENV = "env"


class _PolicyAgent(Node):
    """What stages and the head share: an in-order queue of upstream messages, the rollout clock, metrics."""

    def __init__(self, agent: dict[str, Any], in_edge: dict[str, Any], ppo: dict[str, Any], facts: dict[str, Any],
                 in_dim: int, num_envs: int, rollouts: int, seed: int = 0, run_dir: str | None = None) -> None:
        self.cfg = RlAgentConfig(**agent)
        self.name = self.cfg.name
        self.in_edge = RlEdgeConfig(**in_edge)
        self.ppo = PpoConfig(**ppo)
        self.facts = facts
        self.in_dim = in_dim
        self.n = num_envs
        self.rollouts = rollouts
        self.batch = self.ppo.num_steps * num_envs
        self.mb_size = self.batch // self.ppo.num_minibatches
        self.seed = seed
        self.run_dir = run_dir

    def _lr(self, rollout: int) -> float:
        base = self.cfg.lr or self.ppo.lr
        return base * (self.ppo.lr_at(rollout, self.rollouts) / self.ppo.lr)

    def start(self, rt) -> None:  # noqa: ANN001 - NodeRuntime
        super().start(rt)
        torch.manual_seed(self.seed)
        self.queue: deque[Message] = deque()
        self.means = RunningMeans()
        self.t_start = time.monotonic()
        self.busy_s = 0.0
        self.updates = 0

    def _upstream_expect(self, expect: Expectations) -> None:
        f32 = torch.float32
        if self.in_edge.sender == ENV:
            expect.allow(Kind.INPUT, self.in_edge.name, ENV, [TensorSpec(f32, (None, self.in_dim))])
        else:
            expect.allow(Kind.ACT, self.in_edge.name, self.in_edge.sender,
                         [TensorSpec(f32, (None, self.in_dim)), TensorSpec(torch.int64, (None,))])

    def _label_expect(self, expect: Expectations) -> None:
        f32 = torch.float32
        expect.allow(Kind.LABEL, f"{ENV}->{self.name}", ENV,
                     [TensorSpec(f32, (None, self.facts["action_dim"])), TensorSpec(f32, (None,)),
                      TensorSpec(f32, (None,))])

    def work(self) -> bool:
        if not self.queue or not self._ready(self.queue[0]):
            return False
        t0 = time.monotonic()
        self._process(self.queue.popleft())
        self.busy_s += time.monotonic() - t0
        return True

    def _ready(self, msg: Message) -> bool:
        return True

    def _process(self, msg: Message) -> None:
        raise NotImplementedError

    def _report(self, rollout: int, extra: dict[str, float]) -> None:
        values = {**self.means.pop(), **extra}
        now = time.monotonic()
        values.update(rollout=rollout, updates=self.updates, wall_s=now - self.t_start,
                      busy=self.busy_s / max(now - self.t_start, 1e-9))
        self.rt.tell("metrics", step=(rollout + 1) * self.batch, **values)


class PolicyStage(_PolicyAgent):
    """An encoder: h = f(x) for acting, and in the update phase f(x[idx]) trained through its out-edge's mode."""

    def __init__(self, agent: dict[str, Any], in_edge: dict[str, Any], out_edge: dict[str, Any], ppo: dict[str, Any],
                 facts: dict[str, Any], in_dim: int, num_envs: int, rollouts: int, seed: int = 0,
                 order_seed: int = 0, run_dir: str | None = None) -> None:
        super().__init__(agent, in_edge, ppo, facts, in_dim, num_envs, rollouts, seed, run_dir)
        self.out_edge = RlEdgeConfig(**out_edge)
        self.first = self.in_edge.sender == ENV
        self.order_seed = order_seed  # the same for every stage: the first one draws the minibatches
        self.context = self.out_edge.synthesizer.context
        self.out_dim = self.cfg.hidden[-1] * self.ppo.towers

    def expectations(self) -> Expectations:
        expect = Expectations()
        self._upstream_expect(expect)
        if self.context != "none":
            self._label_expect(expect)
        if self.out_edge.sends_targets:
            expect.allow(Kind.TARGET, self.out_edge.name, self.out_edge.to,
                         [TensorSpec(torch.float32, (None, self.out_dim))])
        return expect

    def peers(self) -> list[str]:
        return sorted({self.out_edge.to} | ({self.in_edge.sender} if self.in_edge.sends_targets else set()))

    def start(self, rt) -> None:  # noqa: ANN001 - NodeRuntime
        super().start(rt)
        self.module = self._build_module()
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=self._lr(0), eps=1e-5)
        self.sg: SyntheticGradient | None = None
        if self.out_edge.backward in ("dni", "cdni"):
            syn = self.out_edge.synthesizer
            self.sg = SyntheticGradient(
                self.out_dim, hidden=tuple(syn.hidden), context_dim=context_dim(self.context, self.facts["action_dim"]),
                lr=syn.lr, scale=syn.scale, capacity=self.ppo.update_epochs * self.ppo.num_minibatches + 2)
        self.obs: Tensor | None = None          # first stage: this rollout's observations [T, N, D]
        self.labels: dict[int, list[Tensor]] = {}  # step -> (action [N, A], reward [N], done [N]) for M's context
        self.pending: tuple[int, Tensor, Tensor] | None = None  # backprop: (k, x, h) waiting for dL/dh
        self.k = 0
        self.rollout = -1   # the rollout being updated

    def _build_module(self) -> torch.nn.Module:
        return PolicyEncoder(self.in_dim, self.cfg.hidden, self.ppo.towers, split=not self.first)

    # -- receiving -------------------------------------------------------------------------------------
    def on_message(self, msg: Message) -> None:
        if msg.kind is Kind.LABEL:
            self.labels[msg.step] = msg.tensors
        elif msg.kind is Kind.TARGET:
            t0 = time.monotonic()
            self._on_target(msg.step, msg.tensors[0])
            self.busy_s += time.monotonic() - t0
        else:
            self.queue.append(msg)

    def _on_target(self, k: int, target: Tensor) -> None:
        if self.sg is not None:
            stats = self.sg.learn(k, target)
            if stats:
                self.means.add(stats, f"{self.out_edge.name}/")
            return
        if self.pending is None or self.pending[0] != k:
            raise RuntimeError(f"{self.name}: gradient for minibatch {k} arrived, none is waiting for it")
        _, x, h = self.pending
        self.pending = None
        h.backward(target)
        self._step(x, k)

    # -- working ---------------------------------------------------------------------------------------
    def _ready(self, msg: Message) -> bool:
        if self.pending is not None:
            return False  # update-locked
        if self.context != "none" and msg.meta.get("phase") == "update":
            r = msg.meta["rollout"]
            return all(s in self.labels for s in range(r * self.ppo.num_steps, (r + 1) * self.ppo.num_steps))
        return True

    def _process(self, msg: Message) -> None:
        phase = msg.meta.get("phase", "act")
        x = msg.tensors[0]
        idx = msg.tensors[1] if len(msg.tensors) > 1 else torch.arange(len(x))
        if phase == "update":
            self._update(msg.step, msg.meta["rollout"], x, idx)
            return
        if self.first and phase == "act" and not msg.meta.get("again"):
            self._store(msg.step, x)
            if msg.step and msg.step % self.ppo.num_steps == 0:  # ends rollout r: bootstrap, update, act again
                self._forward(msg.step, x, idx, {"phase": "bootstrap"})
                self._schedule_update(msg.step // self.ppo.num_steps - 1, msg.step, x)
                return
        self._forward(msg.step, x, idx, dict(msg.meta))

    def _forward(self, step: int, x: Tensor, idx: Tensor, meta: dict[str, Any]) -> None:
        with torch.no_grad():
            h = self.module(x)
        self._send(step, h, idx, meta)

    def _send(self, step: int, h: Tensor, idx: Tensor, meta: dict[str, Any]) -> None:
        self.rt.send(self.out_edge.to, Message(Kind.ACT, self.name, self.out_edge.name, step, [h, idx], meta))

    def _store(self, step: int, x: Tensor) -> None:
        t = step % self.ppo.num_steps
        if t == 0 and step:  # the boundary observation: the old rollout's is kept by the scheduled update
            self.next_obs = torch.zeros(self.ppo.num_steps, *x.shape)
            self.next_obs[0] = x
            return
        if self.obs is None:
            self.obs = torch.zeros(self.ppo.num_steps, *x.shape)
        self.obs[t] = x

    def _schedule_update(self, rollout: int, step: int, x: Tensor) -> None:
        """Queue this rollout's minibatches (as messages to itself), then the boundary observation to act on."""
        flat = self.obs.reshape(self.batch, -1)
        order = minibatch_order(self.order_seed, rollout, self.ppo.update_epochs, self.batch, self.mb_size)
        ahead = []
        for idx in order:
            ahead.append(Message(Kind.INPUT, ENV, self.in_edge.name, self.k, [flat[idx], idx],
                                 {"phase": "update", "rollout": rollout}))
            self.k += 1
        ahead.append(Message(Kind.INPUT, ENV, self.in_edge.name, step, [x], {"phase": "act", "again": True}))
        self.queue.extendleft(reversed(ahead))
        self.obs, self.next_obs = self.next_obs, None

    def _enter_rollout(self, rollout: int) -> None:
        """The first minibatch of ``rollout``'s update: report the last one, anneal the learning rate."""
        if rollout != self.rollout:
            if self.rollout >= 0:
                self._report(self.rollout, {"lr": self.optimizer.param_groups[0]["lr"]})
            self.rollout = rollout
            for group in self.optimizer.param_groups:
                group["lr"] = self._lr(rollout)

    def _update(self, k: int, rollout: int, x: Tensor, idx: Tensor) -> None:
        self._enter_rollout(rollout)
        x = x.detach().clone().requires_grad_(self.in_edge.sends_targets)
        h = self.module(x)
        self._send(k, h.detach(), idx, {"phase": "update", "rollout": rollout})
        mode = self.out_edge.backward
        if mode == "backprop":
            self.pending = (k, x, h)
        elif mode == "none":
            self._reply(k, x)
        else:
            g = self.sg.predict(k, h.detach(), self._context(rollout, idx))
            h.backward(g)
            self._step(x, k)

    def _context(self, rollout: int, idx: Tensor) -> Tensor | None:
        """M's context rows for samples ``idx`` of ``rollout``: the action taken (and the reward-to-go)."""
        if self.context == "none":
            return None
        t0 = rollout * self.ppo.num_steps
        rows = [self.labels[t0 + t] for t in range(self.ppo.num_steps)]
        action = torch.stack([r[0] for r in rows]).reshape(self.batch, -1)   # [T N, A]
        if self.context == "action":
            return action[idx]
        reward, done = torch.stack([r[1] for r in rows]), torch.stack([r[2] for r in rows])  # [T, N]
        togo = torch.zeros_like(reward)
        run = torch.zeros(self.n)
        for t in reversed(range(self.ppo.num_steps)):
            run = reward[t] + self.ppo.gamma * run * (1.0 - done[t])
            togo[t] = run
        togo = togo.reshape(self.batch, 1) * (1.0 - self.ppo.gamma)  # O(1) for rewards O(1) per step
        return torch.cat([action, togo], dim=1)[idx]

    def _step(self, x: Tensor, k: int) -> None:
        self.means.add({"grad_norm": float(clip_grad_norm_(self.module.parameters(), self.ppo.max_grad_norm))})
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.updates += 1
        self._reply(k, x)
        if self.rollout >= 0 and self.context != "none":  # a finished rollout's labels are no longer needed
            for s in [s for s in self.labels if s < self.rollout * self.ppo.num_steps]:
                del self.labels[s]

    def _reply(self, k: int, x: Tensor) -> None:
        """Send dL/dx (zeros when nothing reached this stage) to the stage upstream."""
        if not self.in_edge.sends_targets:
            return
        g = x.grad if x.grad is not None else torch.zeros_like(x)
        self.rt.send(self.in_edge.sender, Message(Kind.TARGET, self.name, self.in_edge.name, k, [g.detach()]))

    def _checkpoint_state(self) -> dict[str, Any]:
        state = {"agent": self.name, "module": self.module.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.sg is not None:
            state["synthetic_gradient"] = self.sg.state_dict()
        return state

    def on_stop(self) -> dict[str, Any]:
        if not hasattr(self, "module"):
            return {}
        if self.run_dir:
            write_checkpoint(self.run_dir, self.name, self._checkpoint_state())
        out: dict[str, Any] = {"updates": self.updates, "wall_s": time.monotonic() - self.t_start}
        if self.sg is not None:
            out.update(sg_dropped=self.sg.dropped, sg_unmatched=self.sg.unmatched, sg_trained=self.sg.trained)
        return out


class PolicyHead(_PolicyAgent):
    """The actor-critic: samples actions, keeps the rollout, computes GAE and the PPO loss, sends dL/dh back."""

    def expectations(self) -> Expectations:
        expect = Expectations()
        self._upstream_expect(expect)
        self._label_expect(expect)
        return expect

    def peers(self) -> list[str]:
        return sorted({ENV} | ({self.in_edge.sender} if self.in_edge.sends_targets else set()))

    def start(self, rt) -> None:  # noqa: ANN001 - NodeRuntime
        super().start(rt)
        a = self.facts["action_dim"]
        self.continuous = self.facts["continuous"]
        self.net = ActorCritic(self.in_dim, self.cfg.hidden, a, self.continuous, self.ppo.towers)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self._lr(0), eps=1e-5)
        t, n = self.ppo.num_steps, self.n
        self.actions = torch.zeros(t, n, a) if self.continuous else torch.zeros(t, n, dtype=torch.int64)
        self.logp, self.values = torch.zeros(t, n), torch.zeros(t, n)
        self.rewards: dict[int, tuple[Tensor, Tensor]] = {}  # step -> (reward [N], done [N])
        self.rollout = 0       # the rollout being collected
        self.data: dict[str, Tensor] = {}  # the finished rollout, flat [T N, ...], during its update
        self.update_t0 = 0.0

    def on_message(self, msg: Message) -> None:
        if msg.kind is Kind.LABEL:
            self.rewards[msg.step] = (msg.tensors[1], msg.tensors[2])
        else:
            self.queue.append(msg)

    def _ready(self, msg: Message) -> bool:
        if msg.meta.get("phase") != "bootstrap":
            return True
        t0 = self.rollout * self.ppo.num_steps
        return all(s in self.rewards for s in range(t0, t0 + self.ppo.num_steps))

    def _process(self, msg: Message) -> None:
        phase = msg.meta.get("phase", "act")
        h = msg.tensors[0]
        if phase == "eval":
            with torch.no_grad():
                action, _, _ = self.net.act(h, deterministic=True)
            self._send_action(msg.step, action, {"phase": "eval", "round": msg.meta.get("round", 0)})
        elif phase == "act":
            t = msg.step - self.rollout * self.ppo.num_steps
            if not 0 <= t < self.ppo.num_steps:
                raise RuntimeError(f"{self.name}: observation of step {msg.step} is outside rollout {self.rollout}")
            with torch.no_grad():
                action, logp, value = self.net.act(h)
            self.actions[t], self.logp[t], self.values[t] = action, logp, value
            self._send_action(msg.step, action, {"phase": "act"})
        elif phase == "bootstrap":
            self._bootstrap(h)
        else:
            self._update(msg.step, h, msg.tensors[1])

    def _send_action(self, step: int, action: Tensor, meta: dict[str, Any]) -> None:
        self.rt.send(ENV, Message(Kind.ACT, self.name, f"{self.name}->{ENV}", step, [action.contiguous()], meta))

    def _bootstrap(self, h: Tensor) -> None:
        """The rollout is complete: V of the next observation, then GAE; the update minibatches follow."""
        t0 = self.rollout * self.ppo.num_steps
        steps = range(t0, t0 + self.ppo.num_steps)
        rewards = torch.stack([self.rewards[s][0] for s in steps])
        dones = torch.stack([self.rewards.pop(s)[1] for s in steps])
        with torch.no_grad():
            next_value = self.net(h)[1]
        adv, returns = gae(rewards, self.values, dones, next_value, self.ppo.gamma, self.ppo.gae_lambda)
        b = self.batch
        self.data = {"actions": self.actions.reshape(b, *self.actions.shape[2:]).clone(),
                     "logp": self.logp.reshape(b).clone(), "adv": adv.reshape(b), "returns": returns.reshape(b),
                     "values": self.values.reshape(b).clone()}
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(self.rollout)
        self.updating = self.rollout
        self.remaining = self.ppo.update_epochs * self.ppo.num_minibatches
        self.update_t0 = time.monotonic()
        self.rollout += 1

    def _update(self, k: int, h: Tensor, idx: Tensor) -> None:
        h = h.detach().clone().requires_grad_(True)
        d = self.data
        loss, stats = ppo_loss(self.net, h, d["actions"][idx], d["logp"][idx], d["adv"][idx], d["returns"][idx],
                               d["values"][idx], self.ppo)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        stats["grad_norm"] = float(clip_grad_norm_(self.net.parameters(), self.ppo.max_grad_norm))
        self.optimizer.step()
        self.updates += 1
        self.means.add(stats)
        if self.in_edge.sends_targets:
            self.rt.send(self.in_edge.sender, Message(Kind.TARGET, self.name, self.in_edge.name, k, [h.grad]))
        self.remaining -= 1
        if self.remaining == 0:
            ev = explained_variance(d["values"], d["returns"])
            self._report(self.updating, {"explained_variance": ev, "lr": self.optimizer.param_groups[0]["lr"],
                                         "update_s": time.monotonic() - self.update_t0})

    def on_stop(self) -> dict[str, Any]:
        if not hasattr(self, "net"):
            return {}
        if self.run_dir:
            write_checkpoint(self.run_dir, self.name, {"agent": self.name, "module": self.net.state_dict(),
                                                       "optimizer": self.optimizer.state_dict()})
        return {"updates": self.updates, "rollouts": self.rollout, "wall_s": time.monotonic() - self.t_start}
