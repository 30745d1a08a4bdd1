"""The feed-forward agent: a stage (or head) with its own optimizer, talking to its neighbours only by messages.

One training step for step id ``s`` (see DESIGN.md, "One step across an edge"):

1. take the input for ``s``: the environment's batch, the sender's real activation, or, on a
   ``forward = "synthetic"`` edge when the real one has not arrived, I(x_s);
2. ``h = f(x)``; a head computes its loss; a stage takes M(h[, y]) from each ``dni``/``cdni`` out-edge
   and updates at once, or waits for the true gradient on a ``backprop`` out-edge (update-locked);
3. send ``act(h, s)`` forward and the bootstrapped target ``dL/dx`` back to the sender. When that target leaves
   in the same step (a head, or a stage without ``backprop`` out-edges), it also carries the credits of the
   steps consumed (meta ``acks``) instead of one ack message per step: one message per step fewer each way.

Targets arriving later train M; real activations arriving later train I. Every store is bounded.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from interfaces import (
    Expectations,
    Kind,
    Message,
    StepBuffer,
    SyntheticGradient,
    SyntheticInput,
    TargetWave,
    TensorSpec,
    WireError,
)

from .blocks import ClassifierHead, build_module
from .checkpoints import checkpoint_path
from .graph import ENV, AgentSpec, EdgeSpec, Graph
from .optim import StepDecay, build_optimizer
from .training import RunningMeans, TrainingAgent


@dataclass
class Pending:
    """A step whose update waits for true gradients on its ``backprop`` out-edges."""

    step: int
    x: torch.Tensor
    h: torch.Tensor
    grad: torch.Tensor | None
    waiting: set[str] = field(default_factory=set)


class FeedForwardAgent(TrainingAgent):
    """A stage or a head of a feed-forward system; see the module docstring for one step."""

    def __init__(self, spec: AgentSpec, graph: Graph, seed: int = 0, run_dir: str | None = None,
                 window: int = 4, capacity: int = 32, metrics_every: int = 50, ack_inputs: bool = False,
                 steps: int = 0, free_running: bool = False, checkpoint_every: int = 0,
                 resume: bool = False) -> None:
        self.spec = spec
        self.total_steps = steps  # the run's environment steps: the clock of a decaying lr
        self.name = spec.name
        self.graph = graph
        self.in_edge: EdgeSpec = graph.in_edge(spec.name)
        self.out_edges: list[EdgeSpec] = graph.out_edges(spec.name)
        self.needs_labels = graph.needs_labels(spec.name)
        self.synthetic_in = self.in_edge.forward == "synthetic"
        self.window = window
        self.capacity = capacity
        self.metrics_every = metrics_every
        self.run_dir = Path(run_dir) if run_dir else None
        self.seed = seed
        self.device = torch.device(spec.device)
        self.ack_inputs = ack_inputs and self.synthetic_in  # the environment paces on every reader of x
        # free-running: a real h that arrives after its step was done on I(x) is trained on too (docs/RESULTS-dni.md)
        self.late_real = (self.synthetic_in and self.in_edge.late_real and self.in_edge.prefer_real
                          and not self.ack_inputs)
        # free-running: the budget is this agent's own `steps` updates; then it tells the environment, stops
        # updating, and goes on forwarding real activations and returning targets (eval mode), so that its
        # neighbours still see real inputs and their M keep learning the gradient of the network evaluated
        self.free_running = free_running
        # credits ride on the target when it leaves in the same step as the ack would (never wait on a true gradient)
        # (not with a delayed target: it leaves only when the targets for this agent's output are back)
        synthetic_out = any(e.backward in ("dni", "cdni") for e in self.out_edges)
        self.acks_ride = (self.in_edge.sends_targets and self.in_edge.forward == "real"
                          and not any(e.backward == "backprop" for e in self.out_edges)
                          and not (synthetic_out and self.in_edge.sg_target == "delayed"))
        self.riding: list[int] = []  # steps whose credit goes back with the next target
        self.checkpoint_every = checkpoint_every  # also save every this many training steps (0: only at evaluations)
        self.down: set[str] = set()               # peers being restarted (see on_peer)
        path = checkpoint_path(self.run_dir, self.name) if resume and self.run_dir else None
        self.saved = torch.load(path, map_location=self.device, weights_only=True) if path and path.is_file() else None
        self.resumed_step = self.saved["step"] if self.saved else None  # READY reports it

    # -- set-up ---------------------------------------------------------------------------------
    def expectations(self) -> Expectations:
        expect = Expectations()
        f32 = torch.float32
        feed = self.in_edge.sender
        if feed == ENV:
            expect.allow(Kind.INPUT, self.in_edge.name, ENV, [TensorSpec(f32, (None, *self.spec.in_shape))])
        else:
            expect.allow(Kind.ACT, self.in_edge.name, feed, [TensorSpec(f32, (None, *self.spec.in_shape))])
            if self.synthetic_in:
                env_edge = f"{ENV}->{self.name}"
                expect.allow(Kind.INPUT, env_edge, ENV, [TensorSpec(f32, (None, *self.graph.input_shape))])
        if self.needs_labels:
            expect.allow(Kind.LABEL, f"{ENV}->{self.name}", ENV, [TensorSpec(torch.int64, (None,))])
        for e in self.out_edges:
            if e.sends_targets:
                expect.allow(Kind.TARGET, e.name, e.receiver, [TensorSpec(f32, (None, *self.spec.out_shape))])
            expect.allow(Kind.CONTROL, e.name, e.receiver)  # credits (acks)
        return expect

    def peers(self) -> list[str]:
        names = [e.receiver for e in self.out_edges]
        if self.in_edge.sends_targets or self.in_edge.forward == "real":
            names.append(self.in_edge.sender)  # targets and acks go back
        if self.ack_inputs or self.free_running:
            names.append(ENV)
        return sorted(set(names))

    def start(self, rt) -> None:  # noqa: ANN001 - NodeRuntime
        super().start(rt)
        torch.manual_seed(self.seed)
        self.rng = random.Random(self.seed)
        self.module = build_module(self.spec.module).to(self.device)
        self.make_optimizer()
        self.sg: dict[str, SyntheticGradient] = {}
        for e in self.out_edges:
            if e.backward in ("dni", "cdni"):
                cfg = dict(e.synthesizer)
                self.sg[e.name] = SyntheticGradient(
                    self.spec.out_shape, hidden=tuple(cfg.get("hidden", ())),
                    context_dim=self.graph.classes if e.backward == "cdni" else 0,
                    lr=cfg.get("lr", 1e-4), capacity=cfg.get("capacity", self.capacity),
                    device=self.device, scale=cfg.get("scale", 1.0), updates=cfg.get("updates", 1))
        # target = "delayed" on the in-edge: the sender's M learns from the true gradient this agent sends back
        # once the targets for its own output are back (a backward wave), not from this agent's own M
        synthetic_out = [e.name for e in self.out_edges if e.backward in ("dni", "cdni")]
        self.wave: TargetWave | None = None
        if self.in_edge.sends_targets and synthetic_out and self.in_edge.sg_target == "delayed":
            self.wave = TargetWave(self.module, [e.name for e in self.out_edges if e.sends_targets], self.capacity)
        self.si: SyntheticInput | None = None
        if self.synthetic_in:
            cfg = dict(self.in_edge.input_synthesizer)
            self.si = SyntheticInput(self.graph.input_shape, self.spec.in_shape,
                                     hidden=tuple(cfg.get("hidden", ())), lr=cfg.get("lr", 1e-4),
                                     capacity=cfg.get("capacity", self.capacity), device=self.device)
        self.inputs = StepBuffer(self.capacity)    # x from the environment
        self.acts = StepBuffer(self.capacity)      # real activations from the sender
        self.labels = StepBuffer(self.capacity)
        self.si_pairs = StepBuffer(self.capacity)  # real h waiting to train I (newest first)
        # evaluation passes, keyed by round: the next pass's messages may arrive before this one is done
        self.eval_store: dict[tuple[int, str, int], torch.Tensor] = {}  # (round, kind, step) -> tensor
        self.eval_meta: dict[tuple[int, int], dict[str, Any]] = {}      # (round, step) -> meta
        self.eval_round = 0
        self.eval_next = 0
        self.eval_correct = 0
        self.eval_total = 0
        self.eval_loss = 0.0
        self.inflight: dict[str, int] = {e.name: 0 for e in self.out_edges if e.forward == "real"}
        self.pending: Pending | None = None
        self.frozen = False
        self.last_step = -1
        self.steps_done = 0
        self.skipped = 0
        self.updates = 0
        self.trained_real = 0       # training steps on the sender's real activation (or the env's batch)
        self.trained_synthetic = 0  # training steps on I(x)
        self.trained_late = 0       # late_real: training steps on a real h that came after its step was done on I(x)
        self.budget_done = False    # free-running: this agent's own `steps` updates are done; it stops updating
        self.means = RunningMeans()
        self.t_start = time.monotonic()
        self.t_last_report = self.t_start
        self.done_at_last_report = 0
        self.busy_s = 0.0
        if self.saved is not None:
            self.restore(self.saved)

    # -- receiving --------------------------------------------------------------------------------
    def on_message(self, msg: Message) -> None:
        phase = msg.meta.get("phase", "train")
        if phase == "eval":
            rnd = msg.meta.get("round")
            if not isinstance(rnd, int) or rnd < self.eval_round:
                raise WireError(f"evaluation round {rnd!r} is not pending (this agent is at round {self.eval_round})",
                                msg.sender, msg.edge, msg.step, msg.kind.value)
            self.eval_store[(rnd, msg.kind.value, msg.step)] = msg.tensors[0]
            self.eval_meta.setdefault((rnd, msg.step), {}).update(msg.meta)
            return
        if msg.kind is Kind.INPUT:
            self.inputs.put(msg.step, msg.tensors[0])
            if self.si is not None:
                self.si.remember(msg.step, msg.tensors[0])
        elif msg.kind is Kind.LABEL:
            self.labels.put(msg.step, msg.tensors[0])
        elif msg.kind is Kind.ACT:
            if self.si is not None:  # I learns from the real h that arrive, used or not (see _learn_si)
                self.si_pairs.put(msg.step, msg.tensors[0])
            if msg.step > self.last_step or self.late_real or self.budget_done:
                self.acts.put(msg.step, msg.tensors[0])
        elif msg.kind is Kind.TARGET:
            acks = msg.meta.get("acks")
            if acks:
                self.inflight[msg.edge] = max(0, self.inflight[msg.edge] - len(acks))  # as a plain ack
            t0 = time.monotonic()
            self._on_target(msg.edge, msg.step, msg.tensors[0].to(self.device))
            self.busy_s += time.monotonic() - t0  # M's learning step or the held step's backward: work too
        elif msg.kind is Kind.CONTROL and msg.meta.get("verb") == "ack":
            self.inflight[msg.edge] = max(0, self.inflight[msg.edge] - 1)  # a restarted peer may ack old steps

    def _on_target(self, edge: str, step: int, target: torch.Tensor) -> None:
        if self.wave is not None:
            grad_x = self.wave.add(edge, step, target)
            if grad_x is not None:
                self._send_target(step, grad_x)
        if edge in self.sg:
            stats = self.sg[edge].learn(step, target)
            if stats:
                self.means.add(stats, f"{edge}/")
            return
        p = self.pending
        if p is not None and p.step == step and edge in p.waiting:
            p.grad = target if p.grad is None else p.grad + target
            p.waiting.discard(edge)
            if not p.waiting:
                self.pending = None
                self._finish(p.step, p.x, p.h, p.grad)

    # -- working ----------------------------------------------------------------------------------
    def work(self) -> bool:
        if self._eval_ready():
            self._eval_step()
            return True
        step = self._next_step()
        if step is None:
            return self._learn_si()  # idle: spend the time on the synthetic input model
        t0 = time.monotonic()
        self._train_step(step)
        self._learn_si()
        elapsed = time.monotonic() - t0
        self.busy_s += elapsed
        if self.spec.slowdown > 1.0:
            self.idle((self.spec.slowdown - 1.0) * elapsed)
        if self.budget_done:
            return True
        if self.steps_done % self.metrics_every == 0:
            self._report()
        if self.checkpoint_every and self.steps_done % self.checkpoint_every == 0:
            self.save_checkpoint()
        if self.free_running and self.steps_done >= self.total_steps:
            self.budget_done = True
            self._report()
            self.rt.send(ENV, Message(Kind.CONTROL, self.name, f"{ENV}->{self.name}", self.last_step, [],
                                      {"verb": "done"}))
        return True

    def _learn_si(self) -> bool:
        """Train I on the newest (x, real h) pair: one per tick, so a fast sender cannot swamp this agent."""
        if self.si is None or not len(self.si_pairs):
            return False
        step = max(self.si_pairs.steps())
        stats = self.si.learn(step, self.si_pairs.pop(step).to(self.device))
        if stats:
            self.means.add(stats, f"{self.in_edge.name}/")
        return True

    def _driver(self) -> StepBuffer:
        return self.inputs if (self.in_edge.sender == ENV or self.synthetic_in) else self.acts

    def _next_step(self) -> int | None:
        if self.frozen:
            return None  # after the final evaluation: the checkpoint must be the system that was evaluated
        if self.pending is not None:
            return None  # update-locked: waiting for a true gradient
        if any(n >= self.window for e, n in self.inflight.items() if e not in self.unlocked_down):
            return None  # the receiver has not consumed enough: bounded steps in flight
        ready = self._ready_steps()
        if not self.synthetic_in or self.ack_inputs:
            return min(ready) if ready else None  # forward-locked, or paced by the environment: in order
        if self.budget_done:
            # past the budget only real inputs are worth serving: a target computed at I(x) for a step its sender
            # has not reached matches nothing there, and its M would go without targets
            real = [s for s in self.acts.steps() if not self.needs_labels or s in self.labels]
            return max(real) if real else None
        # forward-unlocked: never wait; take the newest step whose real h is here, else (late_real) the newest
        # real h of a step already done on I(x), else the newest step through I(x)
        real = [s for s in ready if s in self.acts] if self.in_edge.prefer_real else []
        candidates = real or self._late_steps() or ready
        return max(candidates) if candidates else None

    def _ready_steps(self) -> list[int]:
        """Training steps whose inputs (and labels, at a head) are here and newer than the last one trained."""
        return [s for s in self._driver().steps() if s > self.last_step and (not self.needs_labels or s in self.labels)]

    def _late_steps(self) -> list[int]:
        """Steps already done on I(x) whose real h (and label, at a head) has arrived since: ``late_real``."""
        if not self.late_real or self.budget_done:
            return []
        return [s for s in self.acts.steps() if s <= self.last_step and (not self.needs_labels or s in self.labels)]

    def _train_step(self, step: int) -> None:
        late = step <= self.last_step  # late_real: a step done on I(x) before, now on its real h
        if self.synthetic_in:
            x_env = self.inputs.pop(step)
            real = self.acts.pop(step)
            x = real.to(self.device) if real is not None else self.si.predict(step, x_env.to(self.device))
            if not self.budget_done:
                self.means.add({"real_input": float(real is not None)})
                self.trained_synthetic += real is None
                self.trained_late += late
        else:
            x = self._driver().pop(step).to(self.device)
        older = [] if late else [s for s in self._driver().steps() if s < step]
        self.skipped += len(older)
        for s in older:
            self._driver().pop(s)
        # skipped steps return their credit too, or the sender would stall
        if self.acks_ride:
            self.riding = [*older, step]
        elif not self.synthetic_in:
            self._ack(self.in_edge.sender, self.in_edge.name, [*older, step])
        if self.ack_inputs:
            self._ack(ENV, f"{ENV}->{self.name}", [*older, step])
        label = None
        if self.needs_labels:
            # late_real keeps a label until its step is trained on the real h (the store's capacity bounds it)
            keep = self.late_real and self.synthetic_in and real is None
            label = (self.labels.get(step) if keep else self.labels.pop(step)).to(self.device)
            for s in [s for s in self.labels.steps() if s < step] if not self.late_real else []:
                self.labels.pop(s)
        self.last_step = max(self.last_step, step)
        if not self.budget_done:
            self.steps_done += 1
            self.trained_real = self.steps_done - self.trained_synthetic
        x = x.detach().clone().requires_grad_(self.in_edge.sends_targets and self.wave is None)
        if self.wave is not None:
            self.wave.remember(step, x)
        # past a free-running budget: the network that will be evaluated (eval mode) and no update of its own,
        # but it still forwards and returns targets, so its neighbours' M and I keep learning against it
        self.module.train(not self.budget_done)
        self._simulate_device()
        if self.spec.head:
            logits = self.module(x)
            loss = ClassifierHead.loss(logits, label)
            self.means.add({"loss": loss.item(),
                            "train_error": (logits.argmax(1) != label).float().mean().item() * 100})
            self._simulate_device()
            loss.backward()
            self._update()
            self._send_target(step, x.grad)
            return
        h = self.module(x)
        grad: torch.Tensor | None = None
        waiting: set[str] = set()
        for e in self.out_edges:
            if e.backward in ("dni", "cdni"):
                context = F.one_hot(label, self.graph.classes).float() if e.backward == "cdni" else None
                g = self.sg[e.name].predict(step, h.detach(), context)
                grad = g if grad is None else grad + g
            elif e.backward == "backprop":
                waiting.add(e.name)
        act = h.detach()
        for e in self.out_edges:
            self._send_act(e, step, act)
        if waiting:
            self.pending = Pending(step, x, h, grad, waiting)
        else:
            self._finish(step, x, h, grad)

    def _finish(self, step: int, x: torch.Tensor, h: torch.Tensor, grad: torch.Tensor | None) -> None:
        """Backward with the gradient for h (synthetic, true, or their sum), update, send dL/dx back."""
        if grad is not None:
            self._simulate_device()
            h.backward(grad)
            self._update()
        if self.wave is None:  # with the wave, dL/dx goes back when the targets for h are back (_on_target)
            self._send_target(step, x.grad if x.requires_grad else None, like=x)

    def make_optimizer(self) -> None:
        """The optimizer (and its lr decay) for ``self.module``; call again after replacing the module."""
        self.optimizer = build_optimizer(self.spec.optimizer, self.module.parameters())
        self.decay = StepDecay(self.optimizer, self.spec.optimizer, self.total_steps)

    def _update(self) -> None:
        if not self.budget_done and self.rng.random() < self.spec.update_prob:
            self.decay.at(self.last_step)
            self.optimizer.step()
            self.updates += 1
        self.optimizer.zero_grad(set_to_none=True)

    def _send_act(self, e: EdgeSpec, step: int, act: torch.Tensor) -> None:
        msg = Message(Kind.ACT, self.name, e.name, step, [act])
        if e.receiver in self.down:
            self.means.add({"act_dropped": 1.0})
        elif e.forward == "real":
            self.inflight[e.name] += 1
            self.rt.send(e.receiver, msg)
        elif not self.rt.send(e.receiver, msg, block=False):
            self.means.add({"act_dropped": 1.0})

    def _send_target(self, step: int, grad: torch.Tensor | None, like: torch.Tensor | None = None) -> None:
        if not self.in_edge.sends_targets or self.in_edge.sender in self.down:
            return
        if grad is None:  # nothing reached this agent (all out-edges 'none'): an honest zero target
            grad = torch.zeros_like(like)
        meta = {"acks": self.riding} if self.riding else {}
        self.riding = []
        self.rt.send(self.in_edge.sender, Message(Kind.TARGET, self.name, self.in_edge.name, step,
                                                  [grad.detach()], meta))

    def _ack(self, sender: str, edge: str, steps: list[int]) -> None:
        """Return the credit of these steps to the node that sent them."""
        if sender in self.down:
            return
        for step in steps:
            self.rt.send(sender, Message(Kind.CONTROL, self.name, edge, step, [], {"verb": "ack"}))

    def _simulate_device(self) -> None:
        if self.spec.stage_ms > 0:
            self.idle(self.spec.stage_ms / 1000.0)

    # -- evaluation of the composed system --------------------------------------------------------
    def _eval_ready(self) -> bool:
        kind = Kind.INPUT.value if self.in_edge.sender == ENV else Kind.ACT.value
        r, k = self.eval_round, self.eval_next
        if (r, kind, k) not in self.eval_store:
            return False
        if self.spec.head and (r, Kind.LABEL.value, k) not in self.eval_store:
            return False
        final_starts = k == 0 and self.eval_meta[(r, 0)].get("final") and not self.frozen
        # the final evaluation must see the trained system: finish the training already here first
        unfinished = self.pending is not None or (self._ready_steps() and not self.budget_done)
        return not (final_starts and unfinished)

    def _eval_step(self) -> None:
        """Real inputs only: no synthesizer is on this path."""
        r, k = self.eval_round, self.eval_next
        kind = Kind.INPUT.value if self.in_edge.sender == ENV else Kind.ACT.value
        x = self.eval_store.pop((r, kind, k)).to(self.device)
        meta = self.eval_meta.pop((r, k))
        if k == 0 and meta.get("final"):
            self.frozen = True  # no training from here on: the checkpoint is the system evaluated
        self.eval_next += 1
        self.module.eval()
        with torch.no_grad():
            out = self.module(x)
        self.module.train()
        eval_meta = {k: meta[k] for k in ("phase", "round", "last", "at", "final")}
        if self.spec.head:
            y = self.eval_store.pop((r, Kind.LABEL.value, k)).to(self.device)
            self.eval_correct += int((out.argmax(1) == y).sum())
            self.eval_total += len(y)
            self.eval_loss += float(F.cross_entropy(out, y, reduction="sum"))
        else:
            for e in self.out_edges:
                self.rt.send(e.receiver, Message(Kind.ACT, self.name, e.name, k, [out], eval_meta))
        if meta["last"]:
            self.eval_next = 0
            self.eval_round += 1
            if self.spec.head:
                total = max(self.eval_total, 1)
                result = {"round": meta["round"], "at": meta["at"], "final": meta.get("final", False),
                          "test_error": 100.0 * (1 - self.eval_correct / total),
                          "test_loss": self.eval_loss / total, "examples": self.eval_total}
                self.report_eval(result)
            self.save_checkpoint()

    # -- records (the rest: agents.training) ----------------------------------------------------------
    def network(self) -> torch.nn.Module:
        return self.module

    def work_done(self) -> int:
        return self.steps_done

    def synthesizer_state(self) -> dict[str, Any]:
        """Weights and optimizer state of every M and I, and the counters: all a restarted agent needs."""
        state: dict[str, Any] = {
            "synthetic_gradients": {k: v.state_dict() for k, v in self.sg.items()},
            "synthetic_gradient_optimizers": {k: v.optimizer.state_dict() for k, v in self.sg.items()},
            "counters": {"steps": self.steps_done, "updates": self.updates, "skipped": self.skipped,
                         "eval_round": self.eval_round, "rng": self.rng.getstate()}}
        if self.si is not None:
            state["synthetic_input"] = self.si.module.state_dict()
            state["synthetic_input_optimizer"] = self.si.optimizer.state_dict()
        return state

    def counters(self) -> dict[str, float]:
        out: dict[str, float] = {"steps": self.steps_done, "skipped": self.skipped,
                                 "trained_real": self.trained_real, "trained_synthetic": self.trained_synthetic,
                                 "trained_late": self.trained_late,
                                 "store_dropped": self.inputs.dropped + self.acts.dropped + self.labels.dropped,
                                 "stored": len(self.inputs) + len(self.acts) + len(self.labels), **super().counters()}
        for name, sg in self.sg.items():
            out[f"{name}/sg_dropped"] = sg.dropped
            out[f"{name}/sg_unmatched"] = sg.unmatched
        if self.si is not None:
            out[f"{self.in_edge.name}/si_dropped"] = self.si.dropped
        if self.wave is not None:
            out[f"{self.in_edge.name}/wave_dropped"] = self.wave.dropped
            out[f"{self.in_edge.name}/wave_unmatched"] = self.wave.unmatched
        return out

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``save_checkpoint``'s state. The step filter starts afresh (``last_step`` -1): the
        environment's clock may have moved on (a restart) or back (a resumed run) since it was saved."""
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        for name, sg in self.sg.items():
            sg.module.load_state_dict(state["synthetic_gradients"][name])
            sg.optimizer.load_state_dict(state["synthetic_gradient_optimizers"][name])
        if self.si is not None:
            self.si.module.load_state_dict(state["synthetic_input"])
            self.si.optimizer.load_state_dict(state["synthetic_input_optimizer"])
        counters = state["counters"]
        self.steps_done, self.updates, self.skipped = counters["steps"], counters["updates"], counters["skipped"]
        self.done_at_last_report = self.steps_done
        self.eval_round = counters["eval_round"]
        self.rng.setstate(tuple(x if not isinstance(x, list) else tuple(x) for x in counters["rng"]))

    @property
    def unlocked_down(self) -> set[str]:
        """Out-edges to a peer being restarted that need no true gradient: train on M without its credit."""
        if not self.down:
            return set()
        return {e.name for e in self.out_edges if e.receiver in self.down and e.backward != "backprop"}

    def on_peer(self, peer: str, up: bool) -> None:
        """A neighbour died or is back. While it is down this agent sends it nothing; a dni/cdni sender goes on
        updating on M, a synthetic-input receiver on I(x), a locked edge waits. When it is back, what it held
        is gone: its credits return and a step held for its true gradient is dropped."""
        if up:
            self.down.discard(peer)
            for e in self.out_edges:
                if e.receiver == peer and e.name in self.inflight:
                    self.inflight[e.name] = 0
            if self.pending is not None and any(e.receiver == peer and e.name in self.pending.waiting
                                                for e in self.out_edges):
                self.pending = None
            if peer == ENV:
                self.last_step = -1  # the environment went back to its checkpoint's step
        elif peer in self.peers() or peer == self.in_edge.sender:
            self.down.add(peer)
