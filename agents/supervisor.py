"""The supervisor: starts every node, waits for READY, wires peers, watches heartbeats, and stops cleanly.

It owns no model. It ends the run when every required node says ``complete``, when a node fails (its
traceback is kept), when a node goes silent or dies, or on Ctrl-C (KeyboardInterrupt); in every case it
orders the rest to stop (they save their checkpoints) and kills what does not exit in time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import zmq

from interfaces import Expectations, Inbox, Kind, Message, Outlet, make_endpoint

from .launchers import InprocLauncher, Launcher
from .node import SUPERVISOR, Wiring
from .process import NodeSpec


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
                 start_timeout_s: float = 300.0, wiring_extra: dict[str, Any] | None = None) -> None:
        self.specs = specs
        self.launcher = launcher
        self.recorder = recorder
        self.run_id = run_id
        self.ctx = ctx or zmq.Context.instance()
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.start_timeout_s = start_timeout_s
        self.wiring_extra = wiring_extra or {}
        self.last_seen: dict[str, float] = {}
        self.complete: set[str] = set()
        self.done: set[str] = set()
        self.endpoints: dict[str, str] = {}
        self.lost: set[str] = set()  # nodes silent past the heartbeat timeout: not waited for at stop

    def _wiring(self, name: str, supervisor_endpoint: str) -> Wiring:
        inbox = make_endpoint(self.launcher.transport, self.run_id, name, getattr(self.launcher, "host", "127.0.0.1"))
        return Wiring(self.run_id, name, inbox, supervisor_endpoint, **self.wiring_extra.get(name, {}))

    def run(self) -> Outcome:
        place = getattr(self.launcher, "place", None)  # optional: reserve resources for all nodes at once (Ray)
        if place is not None:
            try:
                place(self.specs)
            except RunFailed as err:
                self.launcher.shutdown(0)
                return Outcome("failed", str(err))
        expect = Expectations()
        for spec in self.specs:
            expect.allow(Kind.CONTROL, "", spec.name)
        # tcp: bind where the nodes can reach us (launcher.host, e.g. this machine's Ray node address)
        host = getattr(self.launcher, "host", "127.0.0.1")
        control = Inbox(self.ctx, make_endpoint(self.launcher.transport, self.run_id, SUPERVISOR, host),
                        expect=expect, curve=self.wiring_extra.get(SUPERVISOR, {}).get("curve_server"))
        outlets: dict[str, Outlet] = {}
        outcome = Outcome("failed", "internal error")
        try:
            for spec in self.specs:
                self.launcher.start(spec, self._wiring(spec.name, control.endpoint))
            self._await_ready(control)
            for spec in self.specs:
                curve = self.wiring_extra.get(SUPERVISOR, {}).get("curve_clients", {}).get(spec.name)
                outlets[spec.name] = Outlet(self.ctx, self.endpoints[spec.name], curve=curve)
                outlets[spec.name].send(self._control("start", peers=self.endpoints))
            self._main_loop(control)
            outcome = Outcome("completed")
        except RunFailed as err:
            outcome = Outcome("failed", str(err))
        except KeyboardInterrupt as err:  # Ctrl-C, or a caller's subclass for another signal (runs.execute: SIGTERM)
            outcome = Outcome("stopped", str(err) or "interrupted (Ctrl-C)")
        finally:
            self._stop_all(control, outlets)
            for outlet in outlets.values():
                outlet.close()
            control.close()
        return outcome

    @staticmethod
    def _control(verb: str, **meta: Any) -> Message:
        return Message(Kind.CONTROL, SUPERVISOR, "", 0, [], {"verb": verb, **meta})

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
            raise RunFailed(f"agent {msg.sender!r} failed:\n{msg.meta.get('traceback', '')}")
        if verb == "ready":
            self.endpoints[msg.sender] = msg.meta["endpoint"]
            meta = {**msg.meta, **self.launcher.describe(msg.sender)}
            self.recorder.record(msg.sender, verb, msg.step, meta)
            return
        if verb == "complete":
            self.complete.add(msg.sender)
        if verb == "done":
            self.done.add(msg.sender)
        self.recorder.record(msg.sender, verb, msg.step, msg.meta)

    def _check_alive(self) -> None:
        now = time.monotonic()
        for name, code in self.launcher.exitcodes().items():
            if code is not None and name not in self.done:
                where = self.launcher.describe(name)
                raise RunFailed(f"agent {name!r} ({where}) exited with code {code} before the run ended")
            seen = self.last_seen.get(name)
            if self.launcher.heartbeats and seen is not None and now - seen > self.heartbeat_timeout_s:
                self.lost.add(name)
                where = self.launcher.describe(name)
                raise RunFailed(f"agent {name!r} ({where}) sent no heartbeat for {now - seen:.1f} s")

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

    def _stop_all(self, control: Inbox, outlets: dict[str, Outlet]) -> None:
        """Order every node to stop (each saves its checkpoint), wait a little, then kill the rest."""
        for outlet in outlets.values():
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
