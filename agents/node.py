"""What every node (an agent or the environment) has: an inbox, outlets to its peers, a link to the supervisor.

A node is written as a small state machine: ``on_message`` files what arrives, ``work`` does one unit of
work if it can and returns at once otherwise. The same node then runs in its own process (``drive``
blocks on the inbox between units) or cooperatively with all other nodes in one thread (inproc mode).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from interfaces import CurveClient, CurveServer, Expectations, Inbox, Kind, Message, Outlet

SUPERVISOR = "supervisor"


@dataclass
class Wiring:
    """Where a node lives and whom it talks to; handed to it by the supervisor."""

    run_id: str
    name: str
    inbox: str                      # endpoint to bind (tcp may say port '*')
    supervisor: str                 # the supervisor's control inbox
    peers: dict[str, str] = field(default_factory=dict)   # filled after every node is READY
    curve_server: CurveServer | None = None
    curve_clients: dict[str, CurveClient] = field(default_factory=dict)  # peer -> keys to reach it
    hwm: int = 1000


class Stop(Exception):
    """Raised inside a node when the supervisor orders it to stop."""


class NodeRuntime:
    """Sockets of one node. ``send`` to a peer by name; ``tell`` the supervisor."""

    def __init__(self, ctx: zmq.Context, wiring: Wiring, expect: Expectations) -> None:
        self.ctx = ctx
        self.wiring = wiring
        self.name = wiring.name
        expect.allow(Kind.CONTROL, "", SUPERVISOR)
        self.inbox = Inbox(ctx, wiring.inbox, expect=expect, curve=wiring.curve_server, hwm=wiring.hwm)
        self.control = Outlet(ctx, wiring.supervisor, curve=wiring.curve_clients.get(SUPERVISOR))
        self.outlets: dict[str, Outlet] = {}

    def connect(self, peers: dict[str, str], names: list[str]) -> None:
        for name in names:
            self.outlets[name] = Outlet(self.ctx, peers[name], curve=self.wiring.curve_clients.get(name),
                                        hwm=self.wiring.hwm)

    def send(self, peer: str, msg: Message, block: bool = True) -> bool:
        return self.outlets[peer].send(msg, block=block)

    def tell(self, verb: str, step: int = 0, **meta: Any) -> None:
        self.control.send(Message(Kind.CONTROL, self.name, "", step, [], {"verb": verb, **meta}))

    def close(self) -> None:
        for outlet in self.outlets.values():
            outlet.close()
        self.control.close()
        self.inbox.close()


class Node:
    """Base class of everything the supervisor starts. Subclasses override the hooks below."""

    name: str
    rt: NodeRuntime

    def expectations(self) -> Expectations:
        """Which (kind, edge, sender, tensor specs) this node accepts; everything else is rejected."""
        return Expectations()

    def peers(self) -> list[str]:
        """Names of the nodes this one sends to."""
        return []

    def start(self, rt: NodeRuntime) -> None:
        self.rt = rt

    def on_message(self, msg: Message) -> None:
        raise NotImplementedError

    def work(self) -> bool:
        """Do one unit of work if possible; return whether anything was done. Never block long."""
        return False

    def finished(self) -> bool:
        return False

    def idle(self, seconds: float) -> None:
        """Wait while still filing arriving messages, so a slow agent never lets its peers' queues grow."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            msg = self.rt.inbox.recv(max(1, int(left * 1000)))
            if msg is None:
                continue
            if msg.kind is Kind.CONTROL and msg.sender == SUPERVISOR:
                if msg.meta.get("verb") == "stop":
                    raise Stop()
                continue
            self.on_message(msg)

    def on_stop(self) -> dict[str, Any]:
        """Save what must survive (checkpoint) and return final statistics."""
        return {}


def pump(node: Node, timeout_ms: int) -> bool:
    """Deliver waiting messages, then do one unit of work; wait up to ``timeout_ms`` if there was nothing."""
    messages = node.rt.inbox.recv_all()
    for msg in messages:
        if msg.kind is Kind.CONTROL and msg.sender == SUPERVISOR:
            if msg.meta.get("verb") == "stop":
                raise Stop()
            continue
        node.on_message(msg)
    did = node.work()
    if not did and not messages and timeout_ms > 0:
        msg = node.rt.inbox.recv(timeout_ms)
        if msg is not None:
            if msg.kind is Kind.CONTROL and msg.sender == SUPERVISOR:
                if msg.meta.get("verb") == "stop":
                    raise Stop()
            else:
                node.on_message(msg)
    return did


def wait_for_start(rt: NodeRuntime, timeout_s: float) -> tuple[dict[str, str], list[Message]]:
    """Block until the supervisor sends START with every peer's endpoint.

    Returns the endpoints and the data messages that faster peers sent meanwhile (kept, not lost).
    """
    early: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = rt.inbox.recv(200)
        if msg is None:
            continue
        if msg.kind is Kind.CONTROL and msg.sender == SUPERVISOR:
            verb = msg.meta.get("verb")
            if verb == "start":
                return dict(msg.meta["peers"]), early
            if verb == "stop":
                raise Stop()
        else:
            early.append(msg)
    raise TimeoutError(f"{rt.name}: no START from the supervisor within {timeout_s:.0f} s")
