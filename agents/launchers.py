"""Launchers put nodes somewhere: spawned local processes (default) or all in this thread (inproc, for
deterministic debugging with the same node code). Ray lives in ``ray_launcher`` as an optional extra."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
from typing import Any, Protocol

import zmq

from interfaces import Kind

from .node import SUPERVISOR, Node, NodeRuntime, Stop, Wiring, deliver, pump
from .process import NodeSpec, build_node, process_main
from .security import curve_wiring


class Launcher(Protocol):
    """What the supervisor needs from a placement backend.

    Optional extras, looked up with ``getattr``: ``host`` (the address tcp endpoints bind on, default
    127.0.0.1), ``place(specs)`` (reserve resources for every node at once, before any starts; raises
    ``RunFailed``) and ``supervisor_kwargs(names)`` (extra ``Supervisor`` arguments, e.g. CURVE wiring).
    """

    transport: str   # endpoint scheme the nodes use: inproc, ipc or tcp
    heartbeats: bool  # whether nodes send heartbeats (separate processes) that the supervisor must watch

    def start(self, spec: NodeSpec, wiring: Wiring) -> None: ...
    def exitcodes(self) -> dict[str, int | None]: ...   # None while alive
    def describe(self, name: str) -> dict: ...           # pid / host for the records
    def pump(self) -> bool: ...                            # give cooperative nodes a turn; True if any worked
    def shutdown(self, timeout_s: float) -> None: ...     # join, then kill what is left


class LocalLauncher:
    """One spawned process per node on this machine (``multiprocessing`` spawn context)."""

    transport = "ipc"
    heartbeats = True

    def __init__(self, transport: str = "ipc", keys: str | None = None) -> None:
        self.transport = transport
        self.keys = keys  # CURVE key directory for tcp (None: fresh keys per run)
        self.mp = mp.get_context("spawn")
        self.procs: dict[str, mp.process.BaseProcess] = {}

    def supervisor_kwargs(self, names: list[str]) -> dict[str, Any]:
        """Extra Supervisor arguments: over tcp, CURVE keys for every node and the supervisor."""
        return {"wiring_extra": curve_wiring(names, self.keys)} if self.transport == "tcp" else {}

    def start(self, spec: NodeSpec, wiring: Wiring) -> None:
        proc = self.mp.Process(target=process_main, args=(spec, wiring, os.getpid()), name=f"dnilab-{spec.name}",
                               daemon=True)
        proc.start()
        self.procs[spec.name] = proc

    def exitcodes(self) -> dict[str, int | None]:
        return {name: p.exitcode for name, p in self.procs.items()}

    def describe(self, name: str) -> dict:
        return {"pid": self.procs[name].pid}

    def pump(self) -> bool:
        return False

    def shutdown(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s  # one wait for all, not timeout_s per process
        for p in self.procs.values():
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self.procs.values():
            if p.is_alive():
                p.kill()
                p.join(2)


class InprocLauncher:
    """All nodes in the supervisor's thread, pumped round-robin over ``inproc://`` sockets.

    Same node code as the process launcher; the fixed order makes runs reproducible step for step.
    """

    transport = "inproc"
    heartbeats = False  # the nodes run in the supervisor's own thread

    def __init__(self, ctx: zmq.Context) -> None:
        self.ctx = ctx
        self.nodes: dict[str, Node] = {}
        self.runtimes: dict[str, NodeRuntime] = {}
        self.started: set[str] = set()
        self.codes: dict[str, int | None] = {}
        self.early: dict[str, list] = {}

    def start(self, spec: NodeSpec, wiring: Wiring) -> None:
        if spec.name in self.runtimes:  # a restart: the dead node's sockets go first (its inproc name is reused)
            with contextlib.suppress(Exception):
                self.runtimes[spec.name].close()
            self.started.discard(spec.name)
        node = build_node(spec)
        rt = NodeRuntime(self.ctx, wiring, node.expectations())
        rt.tell("ready", endpoint=rt.inbox.endpoint, pid=os.getpid(), host="inproc", device=spec.device,
                resumed_step=getattr(node, "resumed_step", None))
        self.nodes[spec.name] = node
        self.runtimes[spec.name] = rt
        self.codes[spec.name] = None
        self.early[spec.name] = []

    def exitcodes(self) -> dict[str, int | None]:
        return dict(self.codes)

    def describe(self, name: str) -> dict:
        return {"pid": os.getpid(), "inproc": True}

    def pump(self) -> bool:
        busy = False
        for name, node in self.nodes.items():
            if self.codes[name] is not None:
                continue
            rt = self.runtimes[name]
            try:
                if name not in self.started:
                    self._try_start(name, node, rt)
                else:
                    busy |= pump(node, 0)
            except Stop:
                rt.tell("done", **node.on_stop())
                self.codes[name] = 0
            except Exception:  # noqa: BLE001 - reported like a dead process
                import traceback

                rt.tell("error", traceback=traceback.format_exc())
                self.codes[name] = 1
        return busy

    def _try_start(self, name: str, node: Node, rt: NodeRuntime) -> None:
        for msg in rt.inbox.recv_all():
            if msg.kind is Kind.CONTROL and msg.sender == SUPERVISOR:
                if msg.meta.get("verb") == "stop":
                    raise Stop()
                if msg.meta.get("verb") == "start":
                    rt.connect(dict(msg.meta["peers"]), node.peers())
                    node.start(rt)
                    self.started.add(name)
                    for early in self.early.pop(name, []):
                        deliver(node, early)
            elif name in self.started:
                deliver(node, msg)
            else:
                self.early[name].append(msg)

    def shutdown(self, timeout_s: float) -> None:
        for rt in self.runtimes.values():
            with contextlib.suppress(Exception):
                rt.close()
