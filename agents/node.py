"""What every node (an agent or the environment) has: an inbox, outlets to its peers, a link to the supervisor.

A node is written as a small state machine: ``on_message`` files what arrives, ``work`` does one unit of
work if it can and returns at once otherwise. The same node then runs in its own process (``drive``
blocks on the inbox between units) or cooperatively with all other nodes in one thread (inproc mode).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from interfaces import CurveClient, CurveServer, Expectations, Inbox, Kind, Message, Outlet, WireError

SUPERVISOR = "supervisor"
MAX_STREAK = 10            # malformed messages in a row from one sender that fail the run
FRAME_MARGIN = 2           # an inbox accepts frames up to this many times the biggest tensor it expects ...
HEADER_ALLOWANCE = 1 << 20  # ... plus this (headers, control messages)


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
    max_batch: int = 0              # largest batch the run sends (0: unknown, no cap on frame sizes)


class Stop(Exception):
    """Raised inside a node when the supervisor orders it to stop."""


class MalformedPeer(RuntimeError):
    """A sender kept sending messages that fail validation: the run fails, naming it."""


def frame_cap(expect: Expectations, max_batch: int) -> int:
    """The biggest frame an inbox with these expectations accepts (-1: no cap), from its biggest expected tensor."""
    if max_batch < 1:
        return -1
    largest = expect.largest_tensor_bytes(max_batch)
    return -1 if largest is None else FRAME_MARGIN * largest + HEADER_ALLOWANCE


class NodeRuntime:
    """Sockets of one node. ``send`` to a peer by name; ``tell`` the supervisor."""

    def __init__(self, ctx: zmq.Context, wiring: Wiring, expect: Expectations) -> None:
        self.ctx = ctx
        self.wiring = wiring
        self.name = wiring.name
        expect.allow(Kind.CONTROL, "", SUPERVISOR)
        cap = frame_cap(expect, wiring.max_batch)
        if cap >= 0:
            expect.max_tensor_bytes = cap - HEADER_ALLOWANCE
        self.inbox = Inbox(ctx, wiring.inbox, expect=expect, curve=wiring.curve_server, hwm=wiring.hwm,
                           on_reject=self.reject, max_frame_bytes=cap)
        self.control = Outlet(ctx, wiring.supervisor, curve=wiring.curve_clients.get(SUPERVISOR))
        self.outlets: dict[str, Outlet] = {}
        self.endpoints: dict[str, str] = {}

    def connect(self, peers: dict[str, str], names: list[str], fresh: bool = False) -> None:
        """Connect to these peers (``fresh``: anew, even at the same endpoint: a restarted peer's new inbox)."""
        for name in names:
            if name not in peers or (self.endpoints.get(name) == peers[name] and not fresh):
                continue
            if name in self.outlets:
                self.outlets[name].close()
            self.outlets[name] = Outlet(self.ctx, peers[name], curve=self.wiring.curve_clients.get(name),
                                        hwm=self.wiring.hwm)
            self.endpoints[name] = peers[name]

    def refuse(self, err: WireError) -> None:
        """A decoded message that the node refused (e.g. an evaluation round that is not pending)."""
        self.inbox.count_rejection(err)
        self.reject(err)

    def reject(self, err: WireError) -> None:
        """A message failed validation: count it, log the first per sender, fail after MAX_STREAK in a row."""
        count = self.inbox.rejected_by[err.sender]
        who = "an unidentified sender" if err.sender == "?" else f"peer {err.sender!r}"
        if count == 1:
            print(f"{self.name}: {err} (later rejections from {who} are counted, not logged)", file=sys.stderr,
                  flush=True)
            self.tell("rejected", sender=err.sender, reason=str(err))
        if self.inbox.streaks.get(err.sender, 0) >= MAX_STREAK:
            raise MalformedPeer(f"{who} sent {MAX_STREAK} malformed messages in a row to {self.name!r}; last: {err}")

    def rejections(self) -> dict[str, int]:
        """Rejected messages per claimed sender, as metric columns ``rejected/<sender>``."""
        return {f"rejected/{sender}": n for sender, n in self.inbox.rejected_by.items()}

    def send(self, peer: str, msg: Message, block: bool = True) -> bool:
        return self.outlets[peer].send(msg, block=block)

    def tell(self, verb: str, step: int = 0, **meta: Any) -> None:
        if verb in ("metrics", "done") and self.inbox.rejected:
            meta = {**meta, **self.rejections()}
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

    def on_peer(self, peer: str, up: bool) -> None:
        """The supervisor says ``peer`` died (``up`` False; it is being restarted) or is back (``up`` True)."""

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
            if msg is not None:
                deliver(self, msg)

    def on_stop(self) -> dict[str, Any]:
        """Save what must survive (checkpoint) and return final statistics."""
        return {}


def deliver(node: Node, msg: Message) -> None:
    """Hand one message to a started node: the supervisor's orders are obeyed here, data goes to ``on_message``
    (a message the node refuses as malformed is counted like one the inbox rejected, and the node goes on)."""
    if msg.kind is Kind.CONTROL and msg.sender == SUPERVISOR:
        verb = msg.meta.get("verb")
        if verb == "stop":
            raise Stop()
        if verb == "rewire":
            node.rt.connect(dict(msg.meta["peers"]), node.peers(), fresh=True)
        elif verb in ("peer_down", "peer_up"):
            node.on_peer(str(msg.meta.get("peer")), verb == "peer_up")
        return
    try:
        node.on_message(msg)
    except WireError as err:
        node.rt.refuse(err)


def pump(node: Node, timeout_ms: int) -> bool:
    """Deliver waiting messages, then do one unit of work; wait up to ``timeout_ms`` if there was nothing."""
    messages = node.rt.inbox.recv_all()
    for msg in messages:
        deliver(node, msg)
    did = node.work()
    if not did and not messages and timeout_ms > 0:
        msg = node.rt.inbox.recv(timeout_ms)
        if msg is not None:
            deliver(node, msg)
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
