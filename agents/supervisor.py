"""The supervisor: starts every node, waits for READY, wires peers, watches heartbeats, and stops cleanly.

It owns no model. It ends the run when every required node says ``complete``, when a node fails (its
traceback is kept), when a node goes silent or dies, or on Ctrl-C (KeyboardInterrupt); in every case it
orders the rest to stop (they save their checkpoints), kills what does not exit in time, and removes the
run's ipc socket files. With ``restarts`` > 0 a node that dies (and can be restarted: its spec has
``restart_kwargs``) is started again from its checkpoint instead, its peers told while it is down and
re-wired when it is back; the run fails as above once one node has died more than ``restarts`` times.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Protocol

import zmq

from interfaces import Expectations, Inbox, Kind, Message, Outlet, WireError, make_endpoint

from .launchers import InprocLauncher, Launcher
from .node import MAX_STREAK, SUPERVISOR, Wiring
from .process import NodeSpec

CONTROL_FRAME_BYTES = 16 << 20  # the control inbox carries metrics, tracebacks and endpoints: never a tensor


class Recorder(Protocol):
    """Receives everything nodes report (metrics, evaluations, readiness) to write the run's records."""

    def record(self, sender: str, verb: str, step: int, meta: dict[str, Any]) -> None: ...


@dataclass
class Outcome:
    status: str                  # completed | failed | stopped
    error: str | None = None     # what went wrong, with the node's traceback when there is one


class RunFailed(Exception):
    pass


class Supervisor:
    """Control plane of one run."""

    def __init__(self, specs: list[NodeSpec], launcher: Launcher, recorder: Recorder, run_id: str,
                 ctx: zmq.Context | None = None, heartbeat_timeout_s: float = 15.0,
                 start_timeout_s: float = 300.0, wiring_extra: dict[str, Any] | None = None,
                 restarts: int = 0) -> None:
        self.specs = specs
        self.by_name = {s.name: s for s in specs}
        self.launcher = launcher
        self.recorder = recorder
        self.run_id = run_id
        self.ctx = ctx or zmq.Context.instance()
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.start_timeout_s = start_timeout_s
        self.wiring_extra = wiring_extra or {}
        self.restarts = restarts
        self.last_seen: dict[str, float] = {}
        self.complete: set[str] = set()
        self.done: set[str] = set()
        self.endpoints: dict[str, str] = {}
        self.lost: set[str] = set()  # nodes silent past the heartbeat timeout: not waited for at stop
        self.outlets: dict[str, Outlet] = {}
        self.bound: set[str] = set()  # every inbox endpoint of the run, to remove ipc socket files at the end
        self.restarted: dict[str, int] = {}       # node -> restarts so far
        self.restarting: dict[str, float] = {}    # node -> when it died (until its new process is READY)
        self.last_step: dict[str, int] = {}       # node -> step of its last metrics row
        self.t0 = time.monotonic()
        self.control_endpoint = ""

    def _wiring(self, name: str, supervisor_endpoint: str) -> Wiring:
        inbox = make_endpoint(self.launcher.transport, self.run_id, name, getattr(self.launcher, "host", "127.0.0.1"))
        self.bound.add(inbox)
        return Wiring(self.run_id, name, inbox, supervisor_endpoint, max_batch=self.by_name[name].max_batch,
                      **self.wiring_extra.get(name, {}))

    def run(self) -> Outcome:
        place = getattr(self.launcher, "place", None)  # optional: reserve resources for all nodes at once (Ray)
        if place is not None:
            try:
                place(self.specs)
            except RunFailed as err:
                self.launcher.shutdown(0)
                return Outcome("failed", str(err))
        expect = Expectations(max_tensor_bytes=0)
        for spec in self.specs:
            expect.allow(Kind.CONTROL, "", spec.name)
        # tcp: bind where the nodes can reach us (launcher.host, e.g. this machine's Ray node address)
        host = getattr(self.launcher, "host", "127.0.0.1")
        endpoint = make_endpoint(self.launcher.transport, self.run_id, SUPERVISOR, host)
        self.bound.add(endpoint)
        control = Inbox(self.ctx, endpoint, expect=expect,
                        curve=self.wiring_extra.get(SUPERVISOR, {}).get("curve_server"),
                        on_reject=lambda err: self._reject(control, err), max_frame_bytes=CONTROL_FRAME_BYTES)
        self.control_endpoint = control.endpoint
        outcome = Outcome("failed", "internal error")
        try:
            for spec in self.specs:
                self.launcher.start(spec, self._wiring(spec.name, control.endpoint))
            self._await_ready(control)
            for spec in self.specs:
                self._connect(spec.name)
                self.outlets[spec.name].send(self._control("start", peers=self.endpoints))
            self._main_loop(control)
            outcome = Outcome("completed")
        except RunFailed as err:
            outcome = Outcome("failed", str(err))
        except KeyboardInterrupt as err:  # Ctrl-C, or a caller's subclass for another signal (runs.execute: SIGTERM)
            outcome = Outcome("stopped", str(err) or "interrupted (Ctrl-C)")
        finally:
            try:
                self._stop_all(control)
                for sender, count in control.rejected_by.items():
                    self.recorder.record(SUPERVISOR, "rejected", 0, {"sender": sender, "count": count})
            finally:
                for outlet in self.outlets.values():
                    outlet.close()
                control.close()
                self._remove_socket_files()
        return outcome

    def _remove_socket_files(self) -> None:
        """ipc endpoints are files: a killed node never removes its own, so the supervisor removes them all."""
        for endpoint in self.bound:
            if endpoint.startswith("ipc://"):
                with contextlib.suppress(OSError):
                    os.unlink(endpoint[len("ipc://"):])

    def _connect(self, name: str) -> None:
        curve = self.wiring_extra.get(SUPERVISOR, {}).get("curve_clients", {}).get(name)
        old = self.outlets.get(name)
        if old is not None:  # a restarted node: a fresh outlet even to the same endpoint (the old pipe is gone)
            old.close()
        self.outlets[name] = Outlet(self.ctx, self.endpoints[name], curve=curve)

    @staticmethod
    def _control(verb: str, **meta: Any) -> Message:
        return Message(Kind.CONTROL, SUPERVISOR, "", 0, [], {"verb": verb, **meta})

    def _tell_all(self, msg: Message, but: str) -> None:
        for name, outlet in self.outlets.items():
            if name != but and name not in self.restarting:
                outlet.send(msg, block=False)

    def _reject(self, control: Inbox, err: WireError) -> None:
        """A malformed message on the control inbox: counted, logged once per sender, fatal after MAX_STREAK."""
        who = "an unidentified sender" if err.sender == "?" else f"peer {err.sender!r}"
        if control.rejected_by[err.sender] == 1:
            print(f"supervisor: {err} (later rejections from {who} are counted, not logged)", file=sys.stderr,
                  flush=True)
            self.recorder.record(SUPERVISOR, "rejected", 0, {"sender": err.sender, "reason": str(err)})
        if control.streaks.get(err.sender, 0) >= MAX_STREAK:
            raise RunFailed(f"{who} sent {MAX_STREAK} malformed messages in a row to the supervisor; last: {err}")

    def _receive(self, control: Inbox, timeout_ms: int) -> None:
        """Handle what nodes say; raise RunFailed when one fails."""
        busy = self.launcher.pump()
        if isinstance(self.launcher, InprocLauncher):
            timeout_ms = 0 if busy else 1  # the nodes run in this thread: never sleep while they have work
        msg = control.recv(timeout_ms)
        while msg is not None:
            self._handle(msg)
            msg = control.recv(0)

    def _handle(self, msg: Message) -> None:
        verb = msg.meta.get("verb", "")
        self.last_seen[msg.sender] = time.monotonic()
        if verb == "heartbeat":
            return
        if verb == "error":
            self.recorder.record(msg.sender, verb, msg.step, msg.meta)
            if self._may_restart(msg.sender):
                return  # restarted once its process has exited
            raise RunFailed(f"agent {msg.sender!r} failed{self._again(msg.sender)}:\n{msg.meta.get('traceback', '')}")
        if verb == "ready":
            self.endpoints[msg.sender] = msg.meta["endpoint"]
            meta = {**msg.meta, **self.launcher.describe(msg.sender)}
            self.recorder.record(msg.sender, verb, msg.step, meta)
            if msg.sender in self.restarting:
                self._rejoin(msg.sender, msg.meta)
            return
        if verb == "metrics":
            self.last_step[msg.sender] = msg.step
        if verb == "complete":
            self.complete.add(msg.sender)
        if verb == "done":
            self.done.add(msg.sender)
        self.recorder.record(msg.sender, verb, msg.step, msg.meta)

    def _again(self, name: str) -> str:
        n = self.restarted.get(name, 0)
        return f" (restarted {n} time(s) already, run.restarts = {self.restarts})" if n else ""

    def _may_restart(self, name: str) -> bool:
        return self.by_name[name].restart_kwargs is not None and self.restarted.get(name, 0) < self.restarts

    def _check_alive(self) -> None:
        now = time.monotonic()
        for name, code in self.launcher.exitcodes().items():
            if code is not None and name not in self.done:
                if self._may_restart(name):
                    self._restart(name, code)
                    continue
                where = self.launcher.describe(name)
                raise RunFailed(f"agent {name!r} ({where}) exited with code {code} before the run ended"
                                f"{self._again(name)}")
            if name in self.restarting:
                if now - self.restarting[name] > self.start_timeout_s:
                    raise RunFailed(f"agent {name!r} did not report READY within {self.start_timeout_s:.0f} s of "
                                    "its restart")
                continue
            seen = self.last_seen.get(name)
            if self.launcher.heartbeats and seen is not None and now - seen > self.heartbeat_timeout_s:
                self.lost.add(name)
                where = self.launcher.describe(name)
                raise RunFailed(f"agent {name!r} ({where}) sent no heartbeat for {now - seen:.1f} s")

    def _restart(self, name: str, code: int) -> None:
        """Start a dead node again from its checkpoint; its peers hear it is down until it is READY again."""
        self.restarted[name] = self.restarted.get(name, 0) + 1
        self.restarting[name] = time.monotonic()
        self.last_seen.pop(name, None)
        print(f"supervisor: agent {name!r} exited with code {code}; restarting it from its checkpoint "
              f"(restart {self.restarted[name]} of {self.restarts})", file=sys.stderr, flush=True)
        self._tell_all(self._control("peer_down", peer=name), but=name)
        spec = self.by_name[name]
        spec = dataclasses.replace(spec, kwargs={**spec.kwargs, **(spec.restart_kwargs or {})})
        self.launcher.start(spec, self._wiring(name, self.control_endpoint))

    def _rejoin(self, name: str, ready: dict[str, Any]) -> None:
        """The restarted node is READY: wire it, re-wire its peers to its (maybe new) endpoint, record the restart."""
        died = self.restarting.pop(name)
        self._connect(name)
        self.outlets[name].send(self._control("start", peers=self.endpoints))
        self._tell_all(self._control("rewire", peers={name: self.endpoints[name]}), but=name)
        self._tell_all(self._control("peer_up", peer=name), but=name)
        resumed = ready.get("resumed_step")
        resumed = resumed if isinstance(resumed, int) else -1  # -1: no checkpoint yet, it started afresh
        last = self.last_step.get(name, -1)
        self.recorder.record(name, "restart", last, {
            "attempt": self.restarted[name], "died_s": round(died - self.t0, 3),
            "down_s": round(time.monotonic() - died, 3), "last_reported_step": last, "resumed_step": resumed,
            "steps_lost": max(0, last - resumed)})

    def _await_ready(self, control: Inbox) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while len(self.endpoints) < len(self.specs):
            if time.monotonic() > deadline:
                missing = sorted({s.name for s in self.specs} - set(self.endpoints))
                raise RunFailed(f"agents {missing} did not report READY within {self.start_timeout_s:.0f} s")
            self._receive(control, 50)
            self._check_alive()

    def _main_loop(self, control: Inbox) -> None:
        required = {s.name for s in self.specs if s.required}
        while not required <= self.complete:
            self._receive(control, 50)
            self._check_alive()

    def _stop_all(self, control: Inbox) -> None:
        """Order every node to stop (each saves its checkpoint), wait a little, then kill the rest."""
        for outlet in self.outlets.values():
            outlet.send(self._control("stop"), block=False)
        deadline = time.monotonic() + 20
        alive = {n for n, c in self.launcher.exitcodes().items() if c is None} - self.lost
        while alive - self.done and time.monotonic() < deadline:
            self.launcher.pump()
            self._record_stopping(control, 50)
            alive = {n for n, c in self.launcher.exitcodes().items() if c is None} - self.lost
        while time.monotonic() < deadline and self._record_stopping(control, 50):
            pass  # what the last nodes said as they stopped (inproc: all of it)
        self.launcher.shutdown(5)

    def _record_stopping(self, control: Inbox, timeout_ms: int) -> bool:
        """Record one message from a stopping node; False when none came."""
        try:
            msg = control.recv(timeout_ms)
        except Exception:  # noqa: BLE001 - shutting down: a bad message must not stop the clean-up
            return True
        if msg is None:
            return False
        verb = msg.meta.get("verb")
        if verb in ("done", "error"):
            self.done.add(msg.sender)
        if verb != "heartbeat":
            self.recorder.record(msg.sender, verb, msg.step, msg.meta)
        return True
