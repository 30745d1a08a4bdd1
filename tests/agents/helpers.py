"""Test doubles: agents that misbehave on purpose (plugged in through a recipe's ``factory`` key) and a
runtime that records what an agent sends, so one agent can be driven message by message."""

from __future__ import annotations

from typing import Any

import torch

from agents import FeedForwardAgent
from interfaces import Kind, Message
from runs.bench import faults


class ExplodingAgent(FeedForwardAgent):
    """Raises at its 5th training step: the run must fail cleanly with this traceback."""

    def _train_step(self, step: int) -> None:
        if self.steps_done == 5:
            raise RuntimeError("boom: this agent exploded on purpose")
        super()._train_step(step)


class CorruptingAgent(FeedForwardAgent):
    """Fills its synthesizers with garbage before the final evaluation: composition must not notice."""

    def _eval_step(self) -> None:
        meta = self.eval_meta.get((self.eval_round, self.eval_next), {})
        if meta.get("final") and self.eval_next == 0:
            with torch.no_grad():
                for sg in self.sg.values():
                    for p in sg.module.parameters():
                        p.fill_(float("nan"))
                for si in self.si.values():
                    for p in si.module.parameters():
                        p.fill_(float("nan"))
        super()._eval_step()


class FakeInbox:
    """Always empty: the test hands the agent its messages through ``on_message``."""

    def recv(self, timeout_ms: int | None = None) -> None:
        return None

    def recv_all(self, limit: int = 10_000) -> list:
        return []


class FakeRuntime:
    """Stands in for NodeRuntime: records what the agent sends and tells."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Message]] = []
        self.told: list[tuple[str, dict[str, Any]]] = []
        self.inbox = FakeInbox()

    def send(self, peer: str, msg: Message, block: bool = True) -> bool:
        self.sent.append((peer, msg))
        return True

    def tell(self, verb: str, step: int = 0, **meta: Any) -> None:
        self.told.append((verb, meta))

    def of(self, kind: Kind, peer: str | None = None) -> list[Message]:
        return [m for p, m in self.sent if m.kind is kind and (peer is None or p == peer)
                and m.meta.get("verb") != "ack"]


def stray_frames(sender: str, edge: str) -> list[list[bytes]]:
    """Garbage, a pickle, a wrong kind claiming ``sender``, and a header from "intruder" announcing a 1 GiB tensor."""
    return faults.stray_frames(sender, edge)[:4]


def push_frames(agent: FeedForwardAgent, frames: list[list[bytes]], peers: list[str]) -> None:
    """Send raw frames to these peers' inboxes (and "supervisor": the control inbox), outside the wire format."""
    endpoints = [agent.rt.wiring.supervisor if peer == "supervisor" else agent.rt.endpoints[peer] for peer in peers]
    assert faults.push_stray(endpoints, frames, agent.rt.ctx) == len(endpoints) * len(frames)


class StrayAgent(FeedForwardAgent):
    """At its 5th step pushes malformed frames of every sort into its peers' inboxes and the supervisor's."""

    def _train_step(self, step: int) -> None:
        if self.steps_done == 5:
            push_frames(self, stray_frames(self.name, f"{self.name}->x"), [*self.rt.outlets, "supervisor"])
        super()._train_step(step)


class BabblingAgent(FeedForwardAgent):
    """At its 5th step sends its receivers more malformed messages in a row than they tolerate."""

    def _train_step(self, step: int) -> None:
        if self.steps_done == 5:
            wrong_kind = stray_frames(self.name, f"{self.name}->x")[2:3]
            push_frames(self, wrong_kind * 12, [e.receiver for e in self.out_edges])
        super()._train_step(step)


class CrashOnceAgent(FeedForwardAgent):
    """Raises at its 25th training step, once per run folder (a marker file there remembers it)."""

    def _train_step(self, step: int) -> None:
        marker = self.run_dir / f".{self.name}-crashed"
        if self.steps_done == 25 and not marker.exists():
            marker.touch()
            raise RuntimeError("crash once: this agent died on purpose")
        super()._train_step(step)


class CrashInEvalOnceAgent(FeedForwardAgent):
    """Raises in the middle of evaluation pass ``crash_round``, once per run folder: the pass's messages it held or
    was about to receive are lost with it."""

    crash_round = 0

    def _eval_step(self) -> None:
        marker = self.run_dir / f".{self.name}-crashed"
        if self.eval_round == self.crash_round and self.eval_next == 2 and not marker.exists():
            marker.touch()
            raise RuntimeError("crash once in an evaluation pass")
        super()._eval_step()


class CrashInFinalEvalOnceAgent(CrashInEvalOnceAgent):
    crash_round = 1  # the final pass of a run of two
