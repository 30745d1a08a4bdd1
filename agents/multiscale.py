"""Hierarchical multi-timescale controllers: recurrent agents that tick at different rates (DNI, Sect. 3.3).

Why: a fast core that ticks every environment step feeds a slow core that ticks every ``p`` steps. With
a ``backprop`` edge the fast core must hold its window's graph and wait for the slow core's true
gradient before it can update (update-locked); with a ``dni``/``cdni`` edge it applies its synthetic
gradient M(out[, y]) at once and never waits, and the slow core sends back the target δ = dL/d(input at
its tick) that trains M later (bootstrapped from the slow core's own M, or with ``target = "delayed"`` the
true one, once the slow core's own output has its target back: ``agents.window_wave``).

Schedule (``TickSchedule``): level ``i`` has period ``p_i`` (``p_0 = 1``, each period divides the next)
and ticks at environment steps ``s`` with ``s % p_i == p_i - 1``. A level below the top has a TBPTT
window of ``p_{i+1} / p_i`` of its own ticks that ends at one of the next level's ticks, where it emits
``act(out, s)``; the next level receives exactly one act per own tick, keyed by ``s``, and rejects any
other step. The top level (a head) has a window of ``window`` own ticks and the task loss at each tick.
Episodes have ``episode_length`` steps (a multiple of every window), so ``t = s % episode_length`` and
every state starts at zero when ``t == 0``.

One window of a level (state (h, c): [B, H]; B streams):

1. each tick: ``x`` = encoder(env input [B, 784]) or the lower level's act [B, D_in] (a leaf that
   requires grad when targets go back), concatenated with a one-hot of the tick's phase in the window
   (so a core whose state carries across windows knows where its outputs fall); ``(h, c) = LSTM(x, (h, c))``;
2. window end: the head backpropagates the sum of its ticks' cross-entropies; a lower level computes
   ``out = W h`` [B, D_out], sends it, and backpropagates ``<out, M(out[, y])>`` (dni/cdni, at once) or
   ``<out, δ>`` once the true δ comes back (backprop: windows wait, bounded by one group of the upper
   level's truncation, and the update happens when the whole group is resolved);
3. after its backward, every level sends ``δ_s = dL/dx_s`` for each tick s of the window to the level
   below (the target for that level's M, or its true gradient). A middle level whose in-edge has
   ``synthesizer.target = "delayed"`` (the default of ``dni`` edges) sends instead, when the target for its
   output comes back, the true ``δ_s`` of its window re-run at its current weights (``WindowWave``), so the
   level below's M learns from the true gradient and not from this level's M.

Evaluation runs the composed system on real inputs: the chain of real outputs, no synthesizer.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from interfaces import Expectations, Kind, Message, StepBuffer, Synthesizer, SyntheticGradient, TensorSpec, WireError

from .graph import ENV, AgentSpec, EdgeSpec, Graph
from .optim import StepDecay, build_optimizer
from .tick_schedule import TickSchedule, level_macs, pool_images, pooled_dim, solve_hidden
from .training import RunningMeans, TrainingAgent
from .window_wave import WindowWave

__all__ = ["TickSchedule", "TickingAgent", "TickingCore", "level_macs", "pool_images", "pooled_dim", "solve_hidden"]

State = tuple[Tensor, Tensor]  # (h, c), each [B, H]


class TickingCore(nn.Module):
    """Encoder (optional) -> LSTM cell -> linear readout (the output projection, or class logits)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, encoder: int = 0, phases: int = 1) -> None:
        super().__init__()
        self.phases = phases
        self.hidden = hidden
        self.encoder: nn.Module = nn.Sequential(nn.Linear(in_dim, encoder), nn.ReLU()) if encoder else nn.Identity()
        core_in = (encoder or in_dim) + (phases if phases > 1 else 0)
        self.cell = nn.LSTMCell(core_in, hidden)
        self.readout = nn.Linear(hidden, out_dim)

    def zero_state(self, batch: int, device: torch.device) -> State:
        z = torch.zeros(batch, self.hidden, device=device)
        return z, z.clone()

    def step(self, x: Tensor, phase: int, state: State) -> State:
        """One tick: x [B, in_dim] -> new (h, c) [B, H]."""
        return self.advance(self.encoder(x.flatten(1)), phase, state)

    def advance(self, e: Tensor, phase: int, state: State) -> State:
        """One tick from the encoded input e [B, E] (``encoder(x)``), for callers that keep e too."""
        if self.phases > 1:
            clock = torch.zeros(e.shape[0], self.phases, device=e.device)
            clock[:, phase] = 1.0
            e = torch.cat([e, clock], 1)
        h, c = self.cell(e, state)
        return h, c


class SharedInputSynthesizer(nn.Module):
    """M(out, context) whose context ends with the window's n raw inputs, read through one shared encoder.

    Why: M must learn what the receiver's error depends on from the inputs (e.g. which digits are odd); one
    encoder for all n inputs learns it from n examples per window instead of one, as the sender's own core
    shares its encoder across ticks. context = [prefix (labels and/or h) | x_1 .. x_n], [B, prefix + n * in_dim].
    """

    def __init__(self, out_dim: int, prefix_dim: int, n: int, in_dim: int, features: int,
                 hidden: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.prefix_dim, self.n = prefix_dim, n
        self.context_dim = prefix_dim + n * in_dim
        self.encoder = nn.Sequential(nn.Linear(in_dim, features), nn.ReLU())
        self.trunk = Synthesizer((out_dim,), (out_dim,), hidden, prefix_dim + n * features)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        """x: out [B, D_out]; context [B, context_dim] -> synthetic gradient [B, D_out]."""
        b = x.shape[0]
        prefix, raw = context[:, : self.prefix_dim], context[:, self.prefix_dim :]
        feats = self.encoder(raw.reshape(b * self.n, -1)).reshape(b, -1)  # [B, n * features]
        return self.trunk(x, torch.cat([prefix, feats], 1))


@dataclass
class Window:
    """One TBPTT window in progress (or waiting for its true gradient)."""

    start: int                                     # env step of its first tick
    state0: State | None = None                    # its initial state, detached (a delayed target re-runs it)
    inputs: list[tuple[int, Tensor]] = field(default_factory=list)   # (step, x leaf) per tick
    loss: Tensor | None = None                     # head: sum of the ticks' CE
    out_step: int = -1
    out: Tensor | None = None                      # [B, D_out], graph-attached (backprop: kept)
    features: list[Tensor] = field(default_factory=list)  # M's per-tick inputs: e [B, E] or x [B, in]


class TickingAgent(TrainingAgent):
    """One level of a multi-timescale chain, in its own process; see the module docstring."""

    rate_key = "ticks_per_s"

    def __init__(self, spec: AgentSpec, graph: Graph, level: int, schedule: TickSchedule, classes: int,
                 group: int = 0, seed: int = 0, run_dir: str | None = None, window: int = 4,
                 capacity: int = 32, metrics_every: int = 50, steps: int = 0) -> None:
        self.spec = spec
        self.total_steps = steps  # the run's environment steps: the clock of a decaying lr
        self.name = spec.name
        self.graph = graph
        self.level = level
        self.schedule = schedule
        self.period = schedule.periods[level]
        self.n = schedule.window(level)              # own ticks per TBPTT window
        self.classes = classes
        self.group = group                           # env steps a backprop sender may hold (0: not one)
        self.in_edge: EdgeSpec = graph.in_edge(spec.name)
        outs = graph.out_edges(spec.name)
        self.out_edge: EdgeSpec | None = outs[0] if outs else None
        self.head = spec.head
        self.credit = window
        self.capacity = capacity
        self.metrics_every = metrics_every
        self.seed = seed
        self.run_dir = Path(run_dir) if run_dir else None
        self.device = torch.device(spec.device)
        self.mode = self.out_edge.backward if self.out_edge else "head"
        self.needs_labels = self.head or self.mode == "cdni"
        self.send_back = self.in_edge.sends_targets
        # target = "delayed" on the in-edge of a level whose out-edge is synthetic: the level below's M learns
        # from the true gradient, sent when the target for this level's output is back (WindowWave)
        synthetic_out = self.mode in ("dni", "cdni")
        self.delayed = self.send_back and synthetic_out and self.in_edge.sg_target == "delayed"
        # probe = true: keep the windows anyway and measure the bootstrapped target against the true one
        self.probe = self.send_back and synthetic_out and bool(self.in_edge.synthesizer.get("probe", False))
        m = spec.module
        self.flush = bool(m.get("flush", True))
        self.clip = float(m.get("clip", 0.0))

    # -- set-up ---------------------------------------------------------------------------------
    def expectations(self) -> Expectations:
        expect = Expectations()
        f32 = torch.float32
        feed = self.in_edge.sender
        kind = Kind.INPUT if feed == ENV else Kind.ACT
        expect.allow(kind, self.in_edge.name, feed, [TensorSpec(f32, (None, *self.spec.in_shape))])
        if self.needs_labels:
            expect.allow(Kind.LABEL, f"{ENV}->{self.name}", ENV, [TensorSpec(torch.int64, (None,))])
        if self.out_edge is not None:
            if self.out_edge.sends_targets:
                expect.allow(Kind.TARGET, self.out_edge.name, self.out_edge.receiver,
                             [TensorSpec(f32, (None, *self.spec.out_shape))])
            expect.allow(Kind.CONTROL, self.out_edge.name, self.out_edge.receiver)  # credits (acks)
        return expect

    def peers(self) -> list[str]:
        names = [self.in_edge.sender]  # acks (and targets) go back
        if self.out_edge is not None:
            names.append(self.out_edge.receiver)
        return sorted(set(names))

    def start(self, rt) -> None:  # noqa: ANN001 - NodeRuntime
        super().start(rt)
        torch.manual_seed(self.seed)
        m = self.spec.module
        in_dim = int(math.prod(self.spec.in_shape))
        out_dim = self.classes if self.head else int(math.prod(self.spec.out_shape))
        phases = self.n if not self.head else 1
        self.core = TickingCore(in_dim, int(m["hidden"]), out_dim, int(m.get("encoder", 0)), phases).to(self.device)
        self.optimizer = build_optimizer(self.spec.optimizer, self.core.parameters())
        self.decay = StepDecay(self.optimizer, self.spec.optimizer, self.total_steps)
        self.sg: SyntheticGradient | None = None
        self.sg_state = self.sg_window = self.sg_inputs = False
        if self.mode in ("dni", "cdni"):
            cfg = dict(self.out_edge.synthesizer)
            context = cfg.get("context", "none")  # each context adds to the one before: none < state < window/inputs
            self.sg_state = context != "none"
            self.sg_window = context in ("window", "inputs")
            self.sg_inputs = context == "inputs"
            self.sg_pool = int(cfg.get("pool", 1))  # M reads each raw input average-pooled pool x pool
            per_tick = pooled_dim(in_dim, self.sg_pool) if self.sg_inputs else (int(m.get("encoder", 0)) or in_dim)
            prefix = (self.classes if self.mode == "cdni" else 0) + (int(m["hidden"]) if self.sg_state else 0)
            context_dim = prefix + (self.n * per_tick if self.sg_window else 0)
            hidden = tuple(cfg.get("hidden", ()))
            module = None
            if self.sg_inputs and cfg.get("encoder"):  # one encoder shared by the window's raw inputs
                module = SharedInputSynthesizer(out_dim, prefix, self.n, per_tick, int(cfg["encoder"]), hidden)
            self.sg = SyntheticGradient(self.spec.out_shape, hidden=hidden, context_dim=context_dim,
                                        lr=cfg.get("lr", 1e-4), capacity=cfg.get("capacity", self.capacity),
                                        device=self.device, scale=cfg.get("scale", 1.0), module=module,
                                        learner=cfg.get("learner", "inline"))
        self.wave: WindowWave | None = None
        if self.delayed or self.probe:
            self.wave = WindowWave(self.core, self.n, in_dim, self.out_edge.name, self.capacity)
        self.inputs = StepBuffer(self.capacity)   # train inputs or acts, keyed by step
        self.labels = StepBuffer(self.capacity)   # only at the steps that need one
        self.targets: dict[int, Tensor] = {}      # backprop: true δ waiting for a safe point
        self.pending: deque[Window] = deque()     # backprop: windows waiting for their δ
        self.win: Window | None = None
        self.state: State | None = None
        self.last_in = -1                         # newest train step received (order check)
        self.last_step = -1                       # newest train step ticked
        self.inflight = 0
        self.eval_inputs: deque[tuple[int, Tensor, dict[str, Any]]] = deque()
        self.eval_labels: dict[tuple[Any, int], Tensor] = {}   # (round, step) -> labels [B]
        self.eval_round_in: Any = None
        self.eval_state: State | None = None
        self.eval_last_in = -1
        self.eval_correct = 0
        self.eval_total = 0
        self.eval_loss = 0.0
        self.eval_s = 0.0
        self.eval_t0: float | None = None
        self.ticks = 0
        self.updates = 0
        self.max_lead = 0                         # most own steps ticked ahead of the newest δ received
        self.last_target = -1
        self.means = RunningMeans()
        self.t_start = time.monotonic()
        self.t_last_report = self.t_start
        self.done_at_last_report = 0
        self.busy_s = 0.0

    # -- schedule helpers -------------------------------------------------------------------------
    def _tick_index(self, step: int) -> int:
        """This level's tick index within the episode (0, 1, ...)."""
        return (step % self.schedule.episode_length) // self.period

    def _is_out_tick(self, step: int) -> bool:
        """Whether ``step`` ends one of this level's windows (a lower level emits there)."""
        return self._tick_index(step) % self.n == self.n - 1

    def _reject(self, msg: Message, reason: str) -> WireError:
        return WireError(reason, msg.sender, msg.edge, msg.step, msg.kind.value)

    # -- receiving --------------------------------------------------------------------------------
    def on_message(self, msg: Message) -> None:
        eval_phase = msg.meta.get("phase", "train") == "eval"
        if msg.kind in (Kind.INPUT, Kind.ACT):
            if not self.schedule.is_tick(self.level, msg.step):
                raise self._reject(msg, f"step {msg.step} is not a tick of {self.name!r} (period {self.period}:"
                                        f" ticks at s % {self.period} == {self.period - 1})")
            if eval_phase and msg.meta.get("round") != self.eval_round_in:
                self.eval_round_in, self.eval_last_in = msg.meta.get("round"), -1  # a new pass starts at 0
            last = self.eval_last_in if eval_phase else self.last_in
            if msg.step <= last:
                raise self._reject(msg, f"step {msg.step} arrived after step {last} (duplicate or out of order)")
            if eval_phase:
                self.eval_last_in = msg.step
                if self.eval_t0 is None:
                    self.eval_t0 = time.monotonic()
                self.eval_inputs.append((msg.step, msg.tensors[0], dict(msg.meta)))
            else:
                self.last_in = msg.step
                self.inputs.put(msg.step, msg.tensors[0])
        elif msg.kind is Kind.LABEL:
            wanted = self.schedule.is_tick(self.level, msg.step) and (self.head or self._is_out_tick(msg.step))
            if not wanted:
                return  # labels only matter at the head's ticks and at a cDNI sender's output ticks
            if eval_phase:
                self.eval_labels[(msg.meta.get("round"), msg.step)] = msg.tensors[0]
            else:
                self.labels.put(msg.step, msg.tensors[0])
        elif msg.kind is Kind.TARGET:
            if not self._is_out_tick(msg.step) or not self.schedule.is_tick(self.level, msg.step):
                raise self._reject(msg, f"step {msg.step} is not an output tick of {self.name!r}")
            self.last_target = max(self.last_target, msg.step)
            if self.sg is not None:
                t0 = time.monotonic()
                target = msg.tensors[0].to(self.device)
                stats = self.sg.learn(msg.step, target)
                if stats:
                    self.means.add(stats, "sg/")
                if self.wave is not None:
                    self._wave_targets(msg.step, target)
                self.busy_s += time.monotonic() - t0  # M's learning step (and the wave's re-run) is work too
            else:
                self.targets[msg.step] = msg.tensors[0].to(self.device)  # resolved at a safe point in work()
        elif msg.kind is Kind.CONTROL and msg.meta.get("verb") == "ack":
            self.inflight -= 1

    # -- working ----------------------------------------------------------------------------------
    def work(self) -> bool:
        if self._resolve_targets():
            return True
        if self._eval_ready():
            self._eval_tick()
            return True
        step = self._next_step()
        if step is None:
            return False
        t0 = time.monotonic()
        self._tick(step)
        elapsed = time.monotonic() - t0
        self.busy_s += elapsed
        if self.spec.slowdown > 1.0:
            self.idle((self.spec.slowdown - 1.0) * elapsed)
        if self.ticks % self.metrics_every == 0:
            self._report()
        return True

    def _simulate_device(self, ticks: int = 1) -> None:
        if self.spec.stage_ms > 0:
            self.idle(ticks * self.spec.stage_ms / 1000.0)

    def _next_step(self) -> int | None:
        steps = self.inputs.steps()
        if not steps:
            return None
        s = steps[0]
        expected = self.last_step + self.period if self.last_step >= 0 else self.period - 1
        if s != expected:
            raise RuntimeError(f"{self.name}: got step {s} but the next of its ticks is {expected} (an act was lost)")
        if self.out_edge is not None and self.out_edge.forward == "real" and self.inflight >= self.credit:
            return None  # the next level has not consumed enough: bounded acts in flight
        if self.pending and self._tick_index(s) % self.n == 0:
            if s // self.group != self.pending[0].start // self.group:
                return None  # update-locked: the held windows must get their true gradient first
        if self.needs_labels and (self.head or self._is_out_tick(s)) and s not in self.labels:
            return None
        return s

    def _tick(self, s: int) -> None:
        x = self.inputs.pop(s).to(self.device)
        self._ack(s)
        idx = self._tick_index(s)
        phase = idx % self.n
        if idx == 0 or self.state is None:
            self.state = self.core.zero_state(x.shape[0], self.device)
        if phase == 0:
            self.state = (self.state[0].detach(), self.state[1].detach())
            self.win = Window(start=s, state0=self.state)
        win = self.win
        x = x.detach().clone().requires_grad_(self.send_back and not self.delayed)
        self.core.train()
        self._simulate_device()
        e = self.core.encoder(x.flatten(1))  # [B, E]
        self.state = self.core.advance(e, phase, self.state)
        win.inputs.append((s, x))
        if self.sg_window:  # what M may read besides out and h: this window's inputs (encoded, or raw)
            win.features.append((pool_images(x.flatten(1), self.sg_pool) if self.sg_inputs else e).detach())
        self.ticks += 1
        self.last_step = s
        if self.head:
            y = self.labels.pop(s).to(self.device)
            if bool((y < 0).any()):
                raise RuntimeError(f"{self.name}: the environment gives no target at step {s}, one of this "
                                   f"head's ticks: its period ({self.period}) must equal the env's k")
            logits = self.core.readout(self.state[0])  # [B, classes]
            loss = F.cross_entropy(logits, y)
            win.loss = loss if win.loss is None else win.loss + loss
            self.means.add({"loss": loss.item(),
                            "train_accuracy": (logits.argmax(1) == y).float().mean().item() * 100})
        if phase != self.n - 1:
            return
        self.win = None
        if self.head:
            self._simulate_device(self.n)
            win.loss.backward()
            self._update()
            self._send_targets(win)
        else:
            out = self.core.readout(self.state[0])  # [B, D_out]
            self._send_act(s, out.detach())
            win.out_step, win.out = s, out
            if self.mode in ("dni", "cdni"):
                parts = []
                if self.mode == "cdni":
                    parts.append(F.one_hot(self.labels.pop(s).to(self.device), self.classes).float())
                if self.sg_state:  # M(out, h): the sender's whole state, not only what it sends
                    parts.append(self.state[0].detach())
                if self.sg_window:  # M(out, h, e_1..e_n) or M(out, h, x_1..x_n): what the window read
                    parts.extend(win.features)
                g = self.sg.predict(s, out.detach(), torch.cat(parts, 1) if parts else None)
                if self.wave is not None:  # kept for the true target (and the probe's bootstrapped one)
                    self.wave.remember(s, win.state0, [x for _, x in win.inputs], g if self.probe else None)
                self._simulate_device(self.n)
                (out * g).sum().backward()
                self._update()
                if not self.delayed:
                    self._send_targets(win)
            elif self.mode == "backprop":
                self.pending.append(win)
            else:  # 'none': the receiver sends nothing back; the readout never learns
                self._send_targets(win)
        if self.flush:
            self.state = None
        if self.out_edge is not None and self.out_edge.sends_targets:
            self.max_lead = max(self.max_lead, s - self.last_target)  # steps ticked past the newest δ

    def _resolve_targets(self) -> bool:
        """Backprop: backward each held window whose true δ came; update once none is held."""
        did = False
        while self.pending and self.pending[0].out_step in self.targets:
            t0 = time.monotonic()  # timed here, not in work(), so that an idle poll reads no clock
            win = self.pending.popleft()
            delta = self.targets.pop(win.out_step)
            self._simulate_device(self.n)
            win.out.backward(delta)
            self._send_targets(win)
            did = True
            if not self.pending:
                self._update()
            self.busy_s += time.monotonic() - t0  # a held window's backward is work too
        for s in [s for s in self.targets if not any(w.out_step == s for w in self.pending)]:
            raise RuntimeError(f"{self.name}: true gradient for step {s}, which no held window emitted")
        return did

    def _update(self) -> None:
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.core.parameters(), self.clip)
        self.decay.at(self.last_step)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.updates += 1

    def _send_act(self, s: int, out: Tensor) -> None:
        self.inflight += 1
        self.rt.send(self.out_edge.receiver, Message(Kind.ACT, self.name, self.out_edge.name, s, [out]))

    def _send_targets(self, win: Window) -> None:
        if not self.send_back:
            return
        for s, x in win.inputs:
            grad = x.grad if x.grad is not None else torch.zeros_like(x)
            self.rt.send(self.in_edge.sender, Message(Kind.TARGET, self.name, self.in_edge.name, s,
                                                      [grad.detach()]))

    def _wave_targets(self, out_step: int, delta: Tensor) -> None:
        """The true target for each tick of the window that emitted ``out_step``, at the current weights."""
        resolved = self.wave.resolve(out_step, delta)
        if resolved is None:
            return
        grads, probe = resolved
        self._simulate_device(2 * self.n)  # the window's re-run and its backward
        if probe is not None:
            cos, ratio = probe  # the bootstrapped targets against the true ones
            self.means.add({"bootstrap_cosine": cos}, "wave/")
            if math.isfinite(ratio):
                self.means.add({"bootstrap_norm_ratio": ratio}, "wave/")
        if not self.delayed:
            return
        first = out_step - (self.n - 1) * self.period
        for i, grad in enumerate(grads):
            self.rt.send(self.in_edge.sender, Message(Kind.TARGET, self.name, self.in_edge.name,
                                                      first + i * self.period,
                                                      [grad.reshape(-1, *self.spec.in_shape).contiguous()]))

    def _ack(self, step: int) -> None:
        self.rt.send(self.in_edge.sender, Message(Kind.CONTROL, self.name, self.in_edge.name, step, [],
                                                  {"verb": "ack"}))

    # -- evaluation of the composed system --------------------------------------------------------
    def _eval_ready(self) -> bool:
        if not self.eval_inputs:
            return False
        k, _, meta = self.eval_inputs[0]
        return not self.head or (meta.get("round"), k) in self.eval_labels

    def _eval_tick(self) -> None:
        """Real inputs only, no synthesizer, no gradient; the training state is left untouched."""
        k, x, meta = self.eval_inputs.popleft()
        x = x.to(self.device)
        idx = k // self.period
        phase = idx % self.n
        if idx == 0 or self.eval_state is None:
            self.eval_state = self.core.zero_state(x.shape[0], self.device)
        self.core.eval()
        with torch.no_grad():
            self.eval_state = self.core.step(x, phase, self.eval_state)
            out = self.core.readout(self.eval_state[0])
        self.core.train()
        if self.head:
            y = self.eval_labels.pop((meta.get("round"), k)).to(self.device)
            self.eval_correct += int((out.argmax(1) == y).sum())
            self.eval_total += len(y)
            self.eval_loss += float(F.cross_entropy(out, y, reduction="sum"))
        elif phase == self.n - 1:
            keep = {key: meta[key] for key in ("phase", "round", "last", "at", "final") if key in meta}
            self.rt.send(self.out_edge.receiver, Message(Kind.ACT, self.name, self.out_edge.name, k, [out], keep))
        if phase == self.n - 1 and self.flush:
            self.eval_state = None
        if meta.get("last"):
            if phase != self.n - 1 and not self.head:
                raise RuntimeError(f"{self.name}: the evaluation episode ends at step {k}, not at an output tick")
            if self.eval_t0 is not None:
                self.eval_s += time.monotonic() - self.eval_t0
                self.eval_t0 = None
            if self.head:
                total = max(self.eval_total, 1)
                result = {"round": meta["round"], "at": meta["at"], "final": meta.get("final", False),
                          "test_accuracy": 100.0 * self.eval_correct / total,
                          "test_loss": self.eval_loss / total, "examples": self.eval_total,
                          "train_s": self.train_seconds(), "train_steps": self.last_step + 1}
                self.report_eval(result)
            self.save_checkpoint()

    def train_seconds(self) -> float:
        """Seconds since start, less the time spent in evaluation passes."""
        return time.monotonic() - self.t_start - self.eval_s

    # -- records (the rest: agents.training) ----------------------------------------------------------
    def network(self) -> nn.Module:
        return self.core

    def work_done(self) -> int:
        return self.ticks

    def synthesizer_state(self) -> dict[str, Any]:
        return {"synthetic_gradient": self.sg.state_dict() if self.sg is not None else None}

    def counters(self) -> dict[str, float]:
        out: dict[str, float] = {"ticks": self.ticks, "max_lead": self.max_lead,
                                 "store_dropped": self.inputs.dropped + self.labels.dropped,
                                 "train_s": self.train_seconds(), **super().counters()}
        if self.sg is not None:
            out["sg/dropped"] = self.sg.dropped
            out["sg/unmatched"] = self.sg.unmatched
            if self.wave is not None:
                out["wave/dropped"] = self.wave.dropped
                out["wave/unmatched"] = self.wave.unmatched
            if self.sg.learner is not None:  # M learning on its own thread: how far behind, how often waited
                out["sg/backlog"] = self.sg.learner.backlog
                out["sg/learner_waits"] = self.sg.learner.waits
        return out

    def on_stop(self) -> dict[str, Any]:
        if self.sg is not None:
            self.sg.close()  # a learner thread fits what it has queued before the last checkpoint
        return super().on_stop()
