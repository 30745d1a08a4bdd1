"""Policy agents that talk: message edges from one policy's encoder to another policy's first encoder.

A sender's output ``h`` ``[B, F]`` goes, besides its own policy edge, on each of its message edges as
``act(h, idx)`` in every phase (act, bootstrap, update, eval): the tensor its own head gets. A receiver (the first
encoder of its chain) merges one message per message in-edge with its own observation by a named rule
(``agents.merge``; ``concat`` by default: ``[B, D + F]``) and is a ``PolicyStage`` on the merged input. Messages
pair one for one with what the receiver processes: both policies run the same rollout protocol
(``agents.rl_policy``: the same ``[ppo]`` and env copies, the same minibatch draws, which the message's ``idx``
confirms), so the k-th message is the one for the receiver's k-th item; a mismatch is an error naming the edge.
Messages are of the same step, so message edges may not form a cycle (the recipe check rejects one).

Backward modes of a message edge (dL/dm: the message's part of the receiver's dL/dx, as ``split_gradient`` cuts
it; true at a receiver whose own out-edge is ``backprop``, bootstrapped from its M under ``dni``):

- ``backprop``: the receiver sends ``target(dL/dm, k)`` back; the sender's update of minibatch ``k`` waits for it
  (and for every other backprop out-edge's) and applies their sum: DIAL's update-locked gradient (Foerster et al.
  2016);
- ``dni``: the sender applies its M for that edge, M(h), at once; M learns from dL/dm when it arrives;
- ``none``: nothing comes back; the message is shaped by the sender's own policy loss only.

The sender's gradient is the sum over its out-edges (its own head's and each message's), as fan-out sums.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import torch
from torch import Tensor

from interfaces import Expectations, Kind, Message, SyntheticGradient, TensorSpec

from .merge import merge_inputs, merged_shape, split_gradient
from .rl_config import RlEdgeConfig
from .rl_policy import ENV, PolicyStage

__all__ = ["CommStage"]


class CommStage(PolicyStage):
    """A ``PolicyStage`` with message out-edges (its h, to other policies) and, as a first stage, message
    in-edges merged with its observation. ``message_dims``: in-edge name -> the sender's output width F."""

    def __init__(self, agent: dict[str, Any], in_edge: dict[str, Any], out_edge: dict[str, Any], ppo: dict[str, Any],
                 facts: dict[str, Any], in_dim: int, num_envs: int, rollouts: int, seed: int = 0,
                 order_seed: int = 0, run_dir: str | None = None, messages_out: list[dict[str, Any]] | None = None,
                 messages_in: list[dict[str, Any]] | None = None, message_dims: dict[str, int] | None = None,
                 merge: str = "concat") -> None:
        super().__init__(agent, in_edge, out_edge, ppo, facts, in_dim, num_envs, rollouts, seed, order_seed, run_dir)
        self.messages_out = [RlEdgeConfig(**e) for e in messages_out or []]
        self.messages_in = [RlEdgeConfig(**e) for e in messages_in or []]
        dims = dict(message_dims or {})
        self.merge = merge
        self.obs_dim = in_dim
        self.part_shapes = [(in_dim,), *((dims[e.name],) for e in self.messages_in)]
        if self.messages_in:
            if not self.first:
                raise ValueError(f"{self.name}: only a policy's first encoder can receive messages")
            names = [self.in_edge.name, *(e.name for e in self.messages_in)]
            self.in_dim = merged_shape(merge, self.part_shapes, names)[0]
        self.out_edges = [self.out_edge, *self.messages_out]

    def _upstream_expect(self, expect: Expectations) -> None:
        f32 = torch.float32
        expect.allow(Kind.INPUT, self.in_edge.name, ENV, [TensorSpec(f32, (None, self.obs_dim))])
        for e, (dim,) in zip(self.messages_in, self.part_shapes[1:]):
            expect.allow(Kind.ACT, e.name, e.sender, [TensorSpec(f32, (None, dim)), TensorSpec(torch.int64, (None,))])

    def expectations(self) -> Expectations:
        expect = super().expectations()
        for e in self.messages_out:
            if e.sends_targets:
                expect.allow(Kind.TARGET, e.name, e.to, [TensorSpec(torch.float32, (None, self.out_dim))])
        return expect

    def peers(self) -> list[str]:
        return sorted(set(super().peers()) | {e.to for e in self.messages_out}
                      | {e.sender for e in self.messages_in if e.sends_targets})

    def start(self, rt) -> None:  # noqa: ANN001 - NodeRuntime
        super().start(rt)
        capacity = self.ppo.update_epochs * self.ppo.num_minibatches + 2
        self.msg_sg = {e.name: SyntheticGradient(self.out_dim, hidden=tuple(e.synthesizer.hidden),
                                                 lr=e.synthesizer.lr, scale=e.synthesizer.scale, capacity=capacity)
                       for e in self.messages_out if e.backward == "dni"}
        self.heard: dict[str, deque[Message]] = {e.name: deque() for e in self.messages_in}
        self.parts: list[Tensor] = []   # this item's messages, in-edge order
        self.waiting: dict[str, Any] | None = None  # backprop out-edges: minibatch k waiting for its targets

    # -- receiving -------------------------------------------------------------------------------------
    def on_message(self, msg: Message) -> None:
        if msg.kind is Kind.ACT and msg.edge in self.heard:
            self.heard[msg.edge].append(msg)
        elif msg.kind is Kind.TARGET:
            t0 = time.monotonic()
            self._on_edge_target(msg.edge, msg.step, msg.tensors[0])
            self.busy_s += time.monotonic() - t0
        else:
            super().on_message(msg)

    def _on_edge_target(self, edge: str, k: int, target: Tensor) -> None:
        sg = self.sg if edge == self.out_edge.name else self.msg_sg.get(edge)
        if sg is not None:
            stats = sg.learn(k, target)
            if stats:
                self.means.add(stats, f"{edge}/")
            return
        w = self.waiting
        if w is None or w["k"] != k or edge not in w["left"]:
            raise RuntimeError(f"{self.name}: gradient on {edge} for minibatch {k} arrived, none is waiting for it")
        w["g"] = w["g"] + target
        w["left"].discard(edge)
        if not w["left"]:
            self.waiting = None
            w["h"].backward(w["g"])
            self._step(w["x"], k)

    # -- working ---------------------------------------------------------------------------------------
    def _ready(self, msg: Message) -> bool:
        return self.waiting is None and super()._ready(msg) and all(self.heard.values())

    def _process(self, msg: Message) -> None:
        self.parts = [self._message_for(e, msg) for e in self.messages_in]
        super()._process(msg)

    def _message_for(self, edge: RlEdgeConfig, msg: Message) -> Tensor:
        """The next message on ``edge``, checked to belong to ``msg`` (phase, step, and minibatch)."""
        m = self.heard[edge.name].popleft()
        want = msg.meta.get("phase", "act")
        if want == "act" and not msg.meta.get("again") and msg.step and msg.step % self.ppo.num_steps == 0:
            want = "bootstrap"  # the boundary observation is forwarded for the bootstrap value first
        got = m.meta.get("phase", "act")
        if (got, m.step) != (want, msg.step) or (want == "update" and not torch.equal(m.tensors[1], msg.tensors[1])):
            raise RuntimeError(f"{self.name}: the message on {edge.name} is for {got} step {m.step}, expected {want} "
                               f"step {msg.step} (do the two policies run the same [ppo] on the same env copies?)")
        return m.tensors[0]

    def _merged(self, x: Tensor) -> Tensor:
        return merge_inputs(self.merge, [x, *self.parts]) if self.parts else x

    def _forward(self, step: int, x: Tensor, idx: Tensor, meta: dict[str, Any]) -> None:
        super()._forward(step, self._merged(x), idx, meta)

    def _send(self, step: int, h: Tensor, idx: Tensor, meta: dict[str, Any]) -> None:
        super()._send(step, h, idx, meta)
        for e in self.messages_out:
            self.rt.send(e.to, Message(Kind.ACT, self.name, e.name, step, [h, idx], meta))

    def _update(self, k: int, rollout: int, x: Tensor, idx: Tensor) -> None:
        self._enter_rollout(rollout)
        grads_back = self.in_edge.sends_targets or any(e.sends_targets for e in self.messages_in)
        x = self._merged(x).detach().clone().requires_grad_(grads_back)
        h = self.module(x)
        self._send(k, h.detach(), idx, {"phase": "update", "rollout": rollout})
        g, left, learns = torch.zeros_like(h), set(), False
        for e in self.out_edges:
            if e.backward == "backprop":
                left.add(e.name)
            elif e.backward in ("dni", "cdni"):
                own = e.name == self.out_edge.name
                sg = self.sg if own else self.msg_sg[e.name]
                g = g + sg.predict(k, h.detach(), self._context(rollout, idx) if own else None)
                learns = True
        if left:
            self.waiting = {"k": k, "x": x, "h": h, "g": g, "left": left}
        elif learns:
            h.backward(g)
            self._step(x, k)
        else:
            self._reply(k, x)

    def _reply(self, k: int, x: Tensor) -> None:
        """dL/dx cut per in-edge: the observation's part upstream (if it sends targets), each message's to its
        sender."""
        g = x.grad if x.grad is not None else torch.zeros_like(x)
        parts = split_gradient(self.merge, g, self.part_shapes) if self.messages_in else [g]
        if self.in_edge.sends_targets:
            self.rt.send(self.in_edge.sender, Message(Kind.TARGET, self.name, self.in_edge.name, k,
                                                      [parts[0].detach().contiguous()]))
        for e, part in zip(self.messages_in, parts[1:]):
            if e.sends_targets:
                self.rt.send(e.sender, Message(Kind.TARGET, self.name, e.name, k, [part.detach().contiguous()]))

    def _checkpoint_state(self) -> dict[str, Any]:
        state = super()._checkpoint_state()
        if self.msg_sg:
            state["message_synthetic_gradients"] = {name: sg.state_dict() for name, sg in self.msg_sg.items()}
        return state

    def on_stop(self) -> dict[str, Any]:
        out = super().on_stop()
        for name, sg in getattr(self, "msg_sg", {}).items():
            out.update({f"{name}/sg_dropped": sg.dropped, f"{name}/sg_unmatched": sg.unmatched,
                        f"{name}/sg_trained": sg.trained})
        return out
