"""The body of a node's own process: build the node, READY handshake, then pump until told to stop.

Failures never vanish: an exception is sent to the supervisor with its traceback, and the process exits
non-zero. A node whose supervisor disappears exits too (no orphans).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any

import zmq

from interfaces import Kind, Message, Outlet

from .env_node import load_factory
from .node import Node, NodeRuntime, Stop, Wiring, deliver, pump, wait_for_start

HEARTBEAT_S = 1.0


@dataclass
class NodeSpec:
    """How to build one node: ``factory`` is ``"package.module:Class"``, called with ``kwargs``."""

    name: str
    factory: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    threads: int = 1
    cpus: tuple[int, ...] = ()  # cores this process may run on (os.sched_setaffinity); empty = any
    required: bool = False   # the run completes when every required node says "complete"
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_batch: int = 0       # the largest batch the run sends: caps the frames its inbox accepts (0: no cap)
    restart_kwargs: dict[str, Any] | None = None  # merged into kwargs to restart it from its checkpoint (None: never)


def build_node(spec: NodeSpec) -> Node:
    return load_factory(spec.factory)(**spec.kwargs)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL us if the supervisor dies, so no agent outlives its run."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Heartbeat(threading.Thread):
    """Tells the supervisor every second that this process lives (own socket: sockets are not thread-safe)."""

    def __init__(self, ctx: zmq.Context, wiring: Wiring, parent_pid: int | None) -> None:
        super().__init__(daemon=True, name="heartbeat")
        self.ctx = ctx
        self.wiring = wiring
        self.parent_pid = parent_pid
        self.stopped = threading.Event()

    def run(self) -> None:
        outlet = Outlet(self.ctx, self.wiring.supervisor, curve=self.wiring.curve_clients.get("supervisor"))
        try:
            while not self.stopped.wait(HEARTBEAT_S):
                if self.parent_pid is not None and os.getppid() != self.parent_pid:
                    os._exit(3)  # the supervisor is gone
                outlet.send(Message(Kind.CONTROL, self.wiring.name, "", 0, [], {"verb": "heartbeat"}),
                            block=False)
        finally:
            outlet.close()


def serve(spec: NodeSpec, wiring: Wiring, parent_pid: int | None = None, ctx: zmq.Context | None = None) -> int:
    """Run one node until the supervisor stops it. Returns the exit status (0 = clean)."""
    import torch

    if spec.cpus and hasattr(os, "sched_setaffinity"):  # before torch starts its thread pool, which inherits it
        os.sched_setaffinity(0, spec.cpus)
    torch.set_num_threads(spec.threads)
    own_ctx = ctx is None
    ctx = ctx or zmq.Context()
    rt: NodeRuntime | None = None
    beat: Heartbeat | None = None
    status = 0
    try:
        node = build_node(spec)
        rt = NodeRuntime(ctx, wiring, node.expectations())
        rt.tell("ready", endpoint=rt.inbox.endpoint, pid=os.getpid(), host=socket.gethostname(),
                device=spec.device, resumed_step=getattr(node, "resumed_step", None))
        beat = Heartbeat(ctx, wiring, parent_pid)
        beat.start()
        try:
            peers, early = wait_for_start(rt, 120)
            rt.connect(peers, node.peers())
            node.start(rt)
            for msg in early:
                deliver(node, msg)
            while True:
                pump(node, 20)
        except Stop:
            rt.tell("done", **node.on_stop())
    except BaseException:  # noqa: BLE001 - every failure must reach the supervisor
        status = 1
        text = traceback.format_exc()
        print(text, file=sys.stderr, flush=True)
        if rt is not None:
            with contextlib.suppress(Exception):
                rt.tell("error", traceback=text)
    finally:
        if beat is not None:
            beat.stopped.set()
            beat.join(2)
        if rt is not None:
            rt.close()
        if own_ctx:
            ctx.term()
    return status


def process_main(spec: NodeSpec, wiring: Wiring, parent_pid: int) -> None:
    """Entry point of a spawned node process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    _die_with_parent()
    sys.exit(serve(spec, wiring, parent_pid))
