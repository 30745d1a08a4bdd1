"""The feed-forward agent: a stage (or head) with its own optimizer, talking to its neighbours only by messages.

One training step for step id ``s`` (see DESIGN.md, "One step across an edge"):

1. take the input for ``s`` on every in-edge (``agents.in_edges``): the environment's batch, the sender's real
   activation, or, on a ``forward = "synthetic"`` edge when the real one has not arrived, I(x_s); several
   in-edges (fan-in) are merged by the agent's ``merge`` rule (``agents.merge``), dL/dx is split back per edge;
2. ``h = f(x)``; a head computes its loss; a stage takes M(h[, y]) from each ``dni``/``cdni`` out-edge
   and updates at once, or waits for the true gradient on a ``backprop`` out-edge (update-locked);
3. send ``act(h, s)`` forward and the bootstrapped target ``dL/dx`` back to each sender. When that target leaves
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
    TargetWave,
    TensorSpec,
    WireError,
)

from .blocks import ClassifierHead, build_module
from .checkpoints import checkpoint_path
from .graph import ENV, AgentSpec, EdgeSpec, Graph
from .in_edges import InEdges
from .merge import merge_inputs, split_gradient
from .optim import StepDecay, build_optimizer
from .training import RunningMeans, TrainingAgent


@dataclass
class Pending:
    """A step whose update waits for true gradients on its ``backprop`` out-edges."""

    step: int
    parts: list[torch.Tensor]  # the input of each in-edge (edge order)
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
        self.ins = InEdges(spec.name, graph, ack_inputs)
        self.in_edges: list[EdgeSpec] = self.ins.edges
        self.out_edges: list[EdgeSpec] = graph.out_edges(spec.name)
        self.needs_labels = graph.needs_labels(spec.name)
        self.window = window
        self.capacity = capacity
        self.metrics_every = metrics_every
        self.run_dir = Path(run_dir) if run_dir else None
        self.seed = seed
        self.device = torch.device(spec.device)
        # free-running: the budget is this agent's own `steps` updates; then it tells the environment, stops
        # updating, and goes on forwarding real activations and returning targets (eval mode), so that its
        # neighbours still see real inputs and their M keep learning the gradient of the network evaluated
        self.free_running = free_running
        # credits ride on the target when it leaves in the same step as the ack would (never wait on a true gradient)
        # (not with a delayed target: it leaves only when the targets for this agent's output are back)
        synthetic_out = any(e.backward in ("dni", "cdni") for e in self.out_edges)
        # target = "delayed" on an in-edge: the sender's M learns from the true gradient this agent sends back
        # once the targets for its own output are back (a backward wave); the wave then carries every in-edge's
        self.delayed = synthetic_out and any(e.sends_targets and e.sg_target == "delayed" for e in self.in_edges)
        self.acks_ride = {e.name for e in self.in_edges if e.sends_targets and e.forward == "real"
                          and not any(o.backward == "backprop" for o in self.out_edges) and not self.delayed}
        self.riding: dict[str, list[int]] = {}  # in-edge -> steps whose credit goes back with its next target
        self.checkpoint_every = checkpoint_every  # also save every this many training steps (0: only at evaluations)
        self.down: set[str] = set()               # peers being restarted (see on_peer)
        path = checkpoint_path(self.run_dir, self.name) if resume and self.run_dir else None
        self.saved = torch.load(path, map_location=self.device, weights_only=True) if path and path.is_file() else None
        self.resumed_step = self.saved["step"] if self.saved else None  # READY reports it

    # -- set-up ---------------------------------------------------------------------------------
    def expectations(self) -> Expectations:
        expect = Expectations()
        f32 = torch.float32
        for e, shape in zip(self.in_edges, self.ins.shapes):
            kind = Kind.INPUT if e.sender == ENV else Kind.ACT
            expect.allow(kind, e.name, e.sender, [TensorSpec(f32, (None, *shape))])
        if self.ins.synthetic and self.ins.env_edge is None:
            expect.allow(Kind.INPUT, self.ins.env_name, ENV, [TensorSpec(f32, (None, *self.ins.env_shape))])
        if self.needs_labels:
            expect.allow(Kind.LABEL, f"{ENV}->{self.name}", ENV, [TensorSpec(torch.int64, (None,))])
        for e in self.out_edges:
            if e.sends_targets:
                expect.allow(Kind.TARGET, e.name, e.receiver, [TensorSpec(f32, (None, *self.spec.out_shape))])
            expect.allow(Kind.CONTROL, e.name, e.receiver)  # credits (acks)
        return expect

    def peers(self) -> list[str]:
        names = [e.receiver for e in self.out_edges]
        names += [e.sender for e in self.in_edges if e.sends_targets or e.forward == "real"]  # targets and acks
        if self.ins.ack_inputs or self.free_running or self.spec.head:  # credits, "done", "evaluated"
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
        self.wave: TargetWave | None = None
        if self.delayed:
            self.wave = TargetWave(self.module, [e.name for e in self.out_edges if e.sends_targets], self.capacity)
        self.ins.start(self.capacity, self.device)
        self.si = self.ins.si  # in-edge -> its I(x)
        self.labels = StepBuffer(self.capacity)
        # evaluation passes, keyed by round: the next pass's messages may arrive before this one is done
        self.eval_store: dict[tuple[int, str, str, int], torch.Tensor] = {}  # (round, kind, edge, step) -> tensor
        self.eval_meta: dict[tuple[int, int], dict[str, Any]] = {}      # (round, step) -> meta
        self.eval_round = 0
        self.eval_next = 0
        self.eval_skipped: set[int] = set()  # passes abandoned because a node died during them
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
            if isinstance(rnd, int) and rnd in self.eval_skipped:
                return  # a late message of a pass the environment has abandoned and repeated
            supersedes = msg.meta.get("supersedes")
            if isinstance(rnd, int) and isinstance(supersedes, list) and self.eval_round in supersedes \
                    and rnd > self.eval_round:
                self._abandon_eval(rnd)
            if not isinstance(rnd, int) or rnd < self.eval_round:
                raise WireError(f"evaluation round {rnd!r} is not pending (this agent is at round {self.eval_round})",
                                msg.sender, msg.edge, msg.step, msg.kind.value)
            self.eval_store[(rnd, msg.kind.value, msg.edge, msg.step)] = msg.tensors[0]
            self.eval_meta.setdefault((rnd, msg.step), {}).update(msg.meta)
            return
        if msg.kind is Kind.INPUT:
            self.ins.file_input(msg.step, msg.tensors[0])
        elif msg.kind is Kind.LABEL:
            self.labels.put(msg.step, msg.tensors[0])
        elif msg.kind is Kind.ACT:
            keep = self.ins.late_real or self.budget_done  # a real h of a step already done is still of use
            self.ins.file_act(msg.edge, msg.step, msg.tensors[0], -1 if keep else self.last_step)
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
                self._send_targets(step, split_gradient(self.spec.merge, grad_x, self.ins.shapes))
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
                self._finish(p.step, p.parts, p.h, p.grad)

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
        """Train each I on its newest (x, real h) pair (``InEdges.learn_si``); False if there was none."""
        trained = self.ins.learn_si()
        for edge, stats in trained.items():
            if stats:
                self.means.add(stats, f"{edge}/")
        return bool(trained)

    def _next_step(self) -> int | None:
        if self.frozen:
            return None  # after the final evaluation: the checkpoint must be the system that was evaluated
        if self.pending is not None:
            return None  # update-locked: waiting for a true gradient
        if any(n >= self.window for e, n in self.inflight.items() if e not in self.unlocked_down):
            return None  # the receiver has not consumed enough: bounded steps in flight
        ready = self._ready_steps()
        if self.ins.unlocked and not self.ins.ack_inputs:
            if self.budget_done:
                # past the budget only real inputs are worth serving: a target computed at I(x) for a step its
                # sender has not reached matches nothing there, and its M would go without targets
                return max(self._real_steps(), default=None)
            if self.ins.late_real and not any(self.ins.has_real(s) for s in ready):
                # late_real: rather than a new step through I(x), a step done on I(x) whose real h came since
                late = [s for s in self._real_steps() if s <= self.last_step]
                if late:
                    return max(late)
        return self.ins.pick(ready) if ready else None  # in order when forward-locked; else never wait

    def _ready_steps(self) -> list[int]:
        """Training steps whose inputs (and labels, at a head) are here and newer than the last one trained."""
        return [s for s in self.ins.ready(self.last_step) if not self.needs_labels or s in self.labels]

    def _real_steps(self) -> list[int]:
        """Steps of any age whose real h is here on every in-edge (and label, at a head)."""
        return [s for s in self.ins.all_real() if not self.needs_labels or s in self.labels]

    def _train_step(self, step: int) -> None:
        late = step <= self.last_step  # late_real: a step done on I(x) before, now on its real h
        taken = self.ins.take(step)
        on_real = all(taken.real)
        if self.ins.synthetic and not self.budget_done:
            real = [r for e, r in zip(self.in_edges, taken.real) if e.forward == "synthetic"]
            self.means.add({"real_input": sum(real) / len(real)})
            self.trained_synthetic += not on_real
            self.trained_late += late
        self.skipped += taken.skipped
        for sender, edge, steps in taken.credits:  # skipped steps return their credit too, or the sender stalls
            if edge in self.acks_ride:
                self.riding[edge] = steps
            else:
                self._ack(sender, edge, steps)
        label = None
        if self.needs_labels:
            # late_real keeps a label until its step is trained on the real h (the store's capacity bounds it)
            keep = self.ins.late_real and not on_real
            label = (self.labels.get(step) if keep else self.labels.pop(step)).to(self.device)
            for s in [s for s in self.labels.steps() if s < step] if not self.ins.late_real else []:
                self.labels.pop(s)
        self.last_step = max(self.last_step, step)
        if not self.budget_done:
            self.steps_done += 1
            self.trained_real = self.steps_done - self.trained_synthetic
        parts = [p.detach().clone().requires_grad_(e.sends_targets and self.wave is None)
                 for e, p in zip(self.in_edges, taken.parts)]
        x = merge_inputs(self.spec.merge, parts)  # [B, *in_shape]; one in-edge: its input itself
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
            self._send_targets(step, [p.grad for p in parts], parts)
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
            self.pending = Pending(step, parts, h, grad, waiting)
        else:
            self._finish(step, parts, h, grad)

    def _finish(self, step: int, parts: list[torch.Tensor], h: torch.Tensor, grad: torch.Tensor | None) -> None:
        """Backward with the gradient for h (synthetic, true, or their sum), update, send dL/dx back per edge."""
        if grad is not None:
            self._simulate_device()
            h.backward(grad)
            self._update()
        if self.wave is None:  # with the wave, dL/dx goes back when the targets for h are back (_on_target)
            self._send_targets(step, [p.grad if p.requires_grad else None for p in parts], parts)

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

    def _send_targets(self, step: int, grads: list[torch.Tensor | None],
                      likes: list[torch.Tensor] | None = None) -> None:
        """dL/dx of each in-edge (edge order) back to its sender, with the credits riding on it."""
        for i, (e, grad) in enumerate(zip(self.in_edges, grads)):
            riding = self.riding.pop(e.name, [])
            if not e.sends_targets or e.sender in self.down:
                continue
            if grad is None:  # nothing reached this agent (all out-edges 'none'): an honest zero target
                grad = torch.zeros_like(likes[i])
            meta = {"acks": riding} if riding else {}
            self.rt.send(e.sender, Message(Kind.TARGET, self.name, e.name, step, [grad.detach()], meta))

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
    def _abandon_eval(self, rnd: int) -> None:
        """A node died during the passes before ``rnd``: their messages to or from it are lost, so the
        environment repeats the evaluation as pass ``rnd``; drop what this agent holds of the earlier ones."""
        self.eval_skipped.update(range(self.eval_round, rnd))
        self.eval_store = {k: v for k, v in self.eval_store.items() if k[0] >= rnd}
        self.eval_meta = {k: v for k, v in self.eval_meta.items() if k[0] >= rnd}
        self.eval_round, self.eval_next = rnd, 0
        self.eval_correct = self.eval_total = 0
        self.eval_loss = 0.0

    def _eval_keys(self, r: int, k: int) -> list[tuple[int, str, str, int]]:
        """Where each in-edge's evaluation input for batch ``k`` of round ``r`` is filed (edge order)."""
        return [(r, (Kind.INPUT if e.sender == ENV else Kind.ACT).value, e.name, k) for e in self.in_edges]

    def _eval_ready(self) -> bool:
        r, k = self.eval_round, self.eval_next
        if any(key not in self.eval_store for key in self._eval_keys(r, k)):
            return False
        if self.spec.head and (r, Kind.LABEL.value, self.ins.env_name, k) not in self.eval_store:
            return False
        final_starts = k == 0 and self.eval_meta[(r, 0)].get("final") and not self.frozen
        # the final evaluation must see the trained system: finish the training already here first
        unfinished = self.pending is not None or (self._ready_steps() and not self.budget_done)
        return not (final_starts and unfinished)

    def _eval_step(self) -> None:
        """Real inputs only: no synthesizer is on this path."""
        r, k = self.eval_round, self.eval_next
        x = merge_inputs(self.spec.merge, [self.eval_store.pop(key).to(self.device) for key in self._eval_keys(r, k)])
        meta = self.eval_meta.pop((r, k))
        if k == 0 and meta.get("final"):
            self.frozen = True  # no training from here on: the checkpoint is the system evaluated
        self.eval_next += 1
        self.module.eval()
        with torch.no_grad():
            out = self.module(x)
        self.module.train()
        eval_meta = {k: meta[k] for k in ("phase", "round", "last", "at", "final", "supersedes") if k in meta}
        if self.spec.head:
            y = self.eval_store.pop((r, Kind.LABEL.value, self.ins.env_name, k)).to(self.device)
            self.eval_correct += int((out.argmax(1) == y).sum())
            self.eval_total += len(y)
            self.eval_loss += float(F.cross_entropy(out, y, reduction="sum"))
        else:
            for e in self.out_edges:
                if e.receiver not in self.down:  # a pass a node died in is repeated when it is back
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
                # the environment repeats a pass a node died in, unless the head says it is complete
                self.rt.send(ENV, Message(Kind.CONTROL, self.name, f"{ENV}->{self.name}", k, [],
                                          {"verb": "evaluated", "round": meta["round"]}))
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
                         "eval_round": self.eval_round, "rng": self.rng.getstate()}, **self.ins.state()}
        return state

    def counters(self) -> dict[str, float]:
        out: dict[str, float] = {"steps": self.steps_done, "skipped": self.skipped,
                                 "trained_real": self.trained_real, "trained_synthetic": self.trained_synthetic,
                                 "trained_late": self.trained_late,
                                 "store_dropped": self.ins.dropped() + self.labels.dropped,
                                 "stored": self.ins.stored() + len(self.labels), **super().counters()}
        for name, sg in self.sg.items():
            out[f"{name}/sg_dropped"] = sg.dropped
            out[f"{name}/sg_unmatched"] = sg.unmatched
        for name, si in self.si.items():
            out[f"{name}/si_dropped"] = si.dropped
        if self.wave is not None:
            for e in self.in_edges:
                if e.sends_targets:
                    out[f"{e.name}/wave_dropped"] = self.wave.dropped
                    out[f"{e.name}/wave_unmatched"] = self.wave.unmatched
        return out

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``save_checkpoint``'s state. The step filter starts afresh (``last_step`` -1): the
        environment's clock may have moved on (a restart) or back (a resumed run) since it was saved."""
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        for name, sg in self.sg.items():
            sg.module.load_state_dict(state["synthetic_gradients"][name])
            sg.optimizer.load_state_dict(state["synthetic_gradient_optimizers"][name])
        self.ins.restore(state)
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
        elif peer in self.peers() or any(peer == e.sender for e in self.in_edges):
            self.down.add(peer)
