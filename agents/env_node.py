"""The environment node: steps a gymnasium environment and streams its batches to the agents.

It sends ``input(x, s)`` to the agents the environment feeds (on an edge with ``part = i``, only
``x[:, i]``) and, without credit, to agents with a synthetic input model and no edge from the environment;
``label(y, s)`` to heads and cDNI senders; it never runs more than ``window`` steps ahead of its slowest
real consumer. Every ``eval_every`` steps, and at the end, it streams the
evaluation split through the composed system (phase ``eval``) and the heads report its error.
"""

from __future__ import annotations

import importlib
import time
from collections import deque
from typing import Any

import numpy as np
import torch

from interfaces import Expectations, Kind, Message

from .checkpoints import checkpoint_path, write_checkpoint
from .graph import ENV, Graph
from .node import Node

RESENT_LABELS = 64  # more than the steps any agent can be ahead of a restarted one (window x agents)


def load_factory(ref: str):  # noqa: ANN201 - any callable
    """Resolve ``"package.module:attr"`` (kept as a string so specs stay picklable and layered)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def _tensor(array: Any) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array))


class EnvNode(Node):
    """Streams training batches with credit-based flow control, and evaluation passes on schedule."""

    name = ENV

    def __init__(self, graph: Graph, env_id: str, env_kwargs: dict[str, Any], eval_kwargs: dict[str, Any],
                 steps: int, seconds: float = 0.0, seed: int = 0, eval_every: int = 0, window: int = 4,
                 metrics_every: int = 50, make: str = "environments:make", pace_all: bool = False,
                 free_running: bool = False, run_dir: str | None = None, checkpoint_every: int = 0,
                 resume: bool = False) -> None:
        self.graph = graph
        self.env_id = env_id
        self.env_kwargs = env_kwargs
        self.eval_kwargs = eval_kwargs
        self.steps = steps
        self.seconds = seconds
        self.seed = seed
        self.eval_every = eval_every
        self.window = window
        self.metrics_every = metrics_every
        self.make = make
        names = graph.order()
        self.fed = [n for n in names if graph.env_edge(n) is not None]  # credit-limited
        self.parts = {n: graph.env_edge(n).part for n in self.fed}     # None: the whole batch
        self.broadcast = [n for n in names if n not in self.fed        # I(x) readers
                          and any(e.forward == "synthetic" for e in graph.in_edges(n))]
        # pace_all: I(x) readers ack too, so every agent sees every batch (equal data); else the fastest sets the pace
        self.paced = self.fed + (self.broadcast if pace_all else [])
        self.labelled = [n for n in names if graph.needs_labels(n)]
        self.heads = graph.heads()
        # free-running: the budget is every agent's own `steps` updates; batches flow until all say "done"
        self.free_running = free_running
        self.names = names
        self.run_dir = run_dir
        self.checkpoint_every = checkpoint_every
        self.saved: dict[str, Any] | None = None  # the checkpoint to resume from
        if resume and run_dir and checkpoint_path(run_dir, ENV).is_file():
            self.saved = torch.load(checkpoint_path(run_dir, ENV), map_location="cpu", weights_only=True)
        self.resumed_step = self.saved["step"] if self.saved else None

    def expectations(self) -> Expectations:
        expect = Expectations()
        for n in set(self.paced) | set(self.heads) | (set(self.names) if self.free_running else set()):
            expect.allow(Kind.CONTROL, f"{ENV}->{n}", n)
        return expect

    def peers(self) -> list[str]:
        return sorted(set(self.fed + self.broadcast + self.labelled))

    def start(self, rt) -> None:  # noqa: ANN001 - NodeRuntime
        super().start(rt)
        make = load_factory(self.make)
        self.env = make(self.env_id, **self.env_kwargs)
        self.eval_env = make(self.env_id, **{**self.env_kwargs, **self.eval_kwargs})
        self.inflight = {n: 0 for n in self.paced}
        self.working = set(self.names)  # free-running agents that have not done their budget yet
        self.step = 0
        self.round = 0
        self.done = False
        self.obs: Any = None
        self.truncated = False
        self.info: dict[str, Any] = {}
        self.t_start = time.monotonic()
        self.t_report = self.t_start
        self.down: set[str] = set()  # agents being restarted: not sent to, not waited for
        # evaluation passes sent and not yet reported complete by every head: round -> its "at", "final", heads done.
        # A node that dies meanwhile loses the pass's messages it held or was sent, so the pass is repeated.
        self.eval_open: dict[int, dict[str, Any]] = {}
        self.redo_eval = False
        # the latest labels: a labelled agent back from a restart gets them again, or it would wait forever for
        # the labels of the steps its sender computes next (sent while it was down)
        self.recent_labels: deque[tuple[int, torch.Tensor]] = deque(maxlen=RESENT_LABELS)
        if self.saved:
            self._fast_forward(self.saved)

    def _fast_forward(self, saved: dict[str, Any]) -> None:
        """Continue from a checkpoint: replay the environment to its step (the same batches follow, seeded)."""
        for _ in range(saved["step"]):
            self.obs, self.info = self._next_batch()
        self.step, self.round = saved["step"], saved["round"]
        self.t_start -= saved.get("elapsed_s", 0.0)
        # passes that were open when it stopped: the agents may not have finished them, so they are sent again
        self.eval_open = {int(r): {**e, "heads": set(self.heads)} for r, e in saved.get("eval_open", {}).items()}
        self.redo_eval = bool(self.eval_open)

    def save_checkpoint(self) -> None:
        if self.run_dir:
            open_passes = {r: {"at": e["at"], "final": e["final"]} for r, e in self.eval_open.items()}
            write_checkpoint(self.run_dir, ENV, {"agent": ENV, "step": self.step, "round": self.round,
                                                "elapsed_s": time.monotonic() - self.t_start,
                                                "eval_open": open_passes})

    def on_stop(self) -> dict[str, Any]:
        if hasattr(self, "step") and not self.done:  # started, not finished: where to resume
            self.save_checkpoint()
        return {}

    def on_peer(self, peer: str, up: bool) -> None:
        """Any node being down defers evaluations; a down peer is sent nothing and its credits are not waited for."""
        if up:
            self.down.discard(peer)
            if peer in self.labelled:
                for step, y in self.recent_labels:
                    self._send(peer, Message(Kind.LABEL, ENV, f"{ENV}->{peer}", step, [y]))
        else:
            self.down.add(peer)
            self.redo_eval = self.redo_eval or bool(self.eval_open)
        if peer in self.inflight:
            self.inflight[peer] = 0  # acks of what it held will never come

    def _send(self, peer: str, msg: Message) -> None:
        if peer not in self.down:
            self.rt.send(peer, msg)

    def on_message(self, msg: Message) -> None:
        if msg.kind is Kind.CONTROL and msg.meta.get("verb") == "ack":
            peer = msg.edge.split("->")[1]
            self.inflight[peer] = max(0, self.inflight[peer] - 1)
        elif msg.kind is Kind.CONTROL and msg.meta.get("verb") == "done":
            self.working.discard(msg.sender)
        elif msg.kind is Kind.CONTROL and msg.meta.get("verb") == "evaluated":
            rnd = msg.meta.get("round")
            opened = self.eval_open.get(rnd) if isinstance(rnd, int) else None
            if opened is not None:
                opened["heads"].discard(msg.sender)
                if not opened["heads"]:
                    del self.eval_open[rnd]

    def _budget_left(self) -> bool:
        if self.seconds and time.monotonic() - self.t_start >= self.seconds:
            return False
        if self.free_running:
            return bool(self.working)
        return self.step < self.steps

    def work(self) -> bool:
        quiet = all(n == 0 for n in self.inflight.values()) and not self.down  # evaluate the whole system only
        if self.redo_eval and quiet:
            self.redo_eval = False
            if self.eval_open:  # still open now that every node is back (a head may have finished it meanwhile)
                self._repeat_evals()
                return True
        if self.done:
            return False
        if not self._budget_left():
            if not quiet:
                return False  # let the consumers catch up so the final evaluation sees the trained system
            self._evaluate(final=True)
            self.done = True
            self.rt.tell("complete", step=self.step, steps=self.step)
            return True
        if self.eval_every and self.step and self.step % self.eval_every == 0 and self.round_due():
            if not quiet:
                return False
            self._evaluate(final=False)
            return True
        if any(n >= self.window for p, n in self.inflight.items() if p not in self.down):
            return False
        self._send_batch()
        if self.checkpoint_every and self.step % self.checkpoint_every == 0:
            self.save_checkpoint()
        return True

    def round_due(self) -> bool:
        return self.round < self.step // self.eval_every

    def _next_batch(self) -> tuple[Any, dict[str, Any]]:
        if self.obs is None:
            return self.env.reset(seed=self.seed)
        if self.truncated:  # the previous batch ended a truncated episode (and was served): start the next
            self.truncated = False
            return self.env.reset()
        obs, _, terminated, truncated, info = self.env.step(None)
        if terminated:
            obs, info = self.env.reset()
        self.truncated = bool(truncated and not terminated)  # gymnasium: a truncated step's obs is valid
        return obs, info

    def _send_batch(self) -> None:
        self.obs, self.info = self._next_batch()
        s = self.step
        x = _tensor(self.obs).float()
        y = _tensor(self.info["target"]).long()
        for n in self.fed:
            if n not in self.down:
                self.inflight[n] += 1
            self._send(n, Message(Kind.INPUT, ENV, f"{ENV}->{n}", s, [self._view(n, x)]))
        for n in self.broadcast:
            if n in self.inflight and n not in self.down:
                self.inflight[n] += 1
            self._send(n, Message(Kind.INPUT, ENV, f"{ENV}->{n}", s, [x]))
        for n in self.labelled:
            self._send(n, Message(Kind.LABEL, ENV, f"{ENV}->{n}", s, [y]))
        self.recent_labels.append((s, y))
        self.step += 1
        if self.step % self.metrics_every == 0:
            now = time.monotonic()
            self.rt.tell("metrics", step=self.step, steps=self.step, wall_s=now - self.t_start,
                         batches_per_s=self.metrics_every / max(now - self.t_report, 1e-9))
            self.t_report = now

    def _view(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """What agent ``name``'s edge from the environment carries of the batch ``x``."""
        part = self.parts[name]
        return x if part is None else x[:, part].contiguous()

    def _repeat_evals(self) -> None:
        """Every node is up again after one died during an evaluation: send the last open pass again, as a new
        round that supersedes the open ones (the agents drop what they hold of those)."""
        rounds = sorted(self.eval_open)
        last = self.eval_open[rounds[-1]]
        self.eval_open.clear()
        self._evaluate(final=last["final"], at=last["at"], supersedes=rounds)

    def _evaluate(self, final: bool, at: int | None = None, supersedes: list[int] | None = None) -> None:
        """Stream the evaluation split, in order, through the real chain of agents."""
        batches = []
        obs, info = self.eval_env.reset(seed=self.seed)
        while True:
            batches.append((_tensor(obs).float(), _tensor(info["target"]).long()))
            obs, _, terminated, truncated, info = self.eval_env.step(None)
            if terminated:
                break
            if truncated:  # its obs is still valid: the episode's last batch
                batches.append((_tensor(obs).float(), _tensor(info["target"]).long()))
                break
        at = self.step if at is None else at
        self.eval_open[self.round] = {"at": at, "final": final, "heads": set(self.heads)}
        for k, (x, y) in enumerate(batches):
            meta = {"phase": "eval", "round": self.round, "last": k == len(batches) - 1, "at": at, "final": final}
            if supersedes:
                meta["supersedes"] = supersedes
            for n in self.fed:
                self.rt.send(n, Message(Kind.INPUT, ENV, f"{ENV}->{n}", k, [self._view(n, x)], meta))
            for n in self.heads:
                self.rt.send(n, Message(Kind.LABEL, ENV, f"{ENV}->{n}", k, [y], meta))
        self.round += 1
