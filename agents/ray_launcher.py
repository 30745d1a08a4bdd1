"""Ray backend: every node a Ray actor, all gang-placed with one placement group; the data plane stays
ZeroMQ over tcp with CURVE.

Placement, scheduling and process lifetime are Ray's: each actor reserves the ``num_cpus`` / ``num_gpus``
of its ``NodeSpec`` inside a placement group holding one bundle per node (all or nothing). The actor
binds its inbox on its Ray node's address, reports the real endpoint in READY, and the supervisor (this
process, a Ray driver) wires the peers exactly as with local processes. A dead actor is seen through its
task's result, a silent one through the heartbeats; either way the run fails naming the agent and node, unless
``run.restarts`` lets the supervisor start a new actor in the dead one's bundle (its peers are re-wired to the
new actor's endpoint).

Ray is an optional extra: ``pip install 'dnilab[ray]'``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import socket
import time
from typing import Any

from interfaces import make_endpoint

from .node import Wiring
from .process import NodeSpec, serve
from .security import curve_wiring
from .supervisor import RunFailed

INSTALL_HINT = "pip install 'dnilab[ray]'"
LOOPBACK = "127.0.0.1"
KILLED = -9  # exit code reported for an actor that Ray says died (killed, node lost, OOM ...)


class RayUnavailable(ImportError):
    """Ray is not installed; the message says how to install it."""


def require_ray() -> Any:
    """The ``ray`` module, or RayUnavailable with the install command."""
    try:
        import ray
    except ImportError as err:
        raise RayUnavailable(
            f"the ray launcher needs Ray, which is not installed in this environment: {INSTALL_HINT} "
            f"(or pip install 'ray>=2.9'); every machine of the cluster needs it too") from err
    return ray


def _local_device(spec: NodeSpec) -> NodeSpec:
    """Ray shows an actor only the GPUs it reserved (CUDA_VISIBLE_DEVICES), numbered from 0: cuda:k -> cuda:0."""
    old, new = spec.device, "cuda:0"
    if spec.num_gpus <= 0 or not old.startswith("cuda") or old == new:
        return spec

    def fix(value: Any) -> Any:
        if isinstance(value, str) and value == old:
            return new
        if dataclasses.is_dataclass(value) and not isinstance(value, type) and getattr(value, "device", None) == old:
            return dataclasses.replace(value, device=new)
        return value

    return dataclasses.replace(spec, device=new, kwargs={k: fix(v) for k, v in spec.kwargs.items()})


class NodeActor:
    """The body of one Ray actor: one dnilab node (wrapped with ``ray.remote`` by the launcher)."""

    def info(self) -> dict[str, Any]:
        """Where this actor lives, for the records and for failure messages."""
        import ray

        return {"node_ip": ray.util.get_node_ip_address(), "host": socket.gethostname(), "pid": os.getpid(),
                "node_id": ray.get_runtime_context().get_node_id()[:16]}

    def run(self, spec: NodeSpec, wiring: Wiring, bind_host: str | None) -> int:
        """Serve the node until the supervisor stops it; its inbox binds on ``bind_host`` (None: this Ray
        node's address). Returns the exit status."""
        import ray

        host = bind_host or ray.util.get_node_ip_address()
        wiring = dataclasses.replace(wiring, inbox=make_endpoint("tcp", wiring.run_id, wiring.name, host))
        return serve(_local_device(spec), wiring, parent_pid=None)


class RayLauncher:
    """Nodes as Ray actors; joins the cluster at ``address`` or starts a local Ray instance.

    ``keys``: CURVE key directory (None: fresh keys per run). ``bind_host``: the address tcp endpoints bind
    on; None picks 127.0.0.1 when every bundle sits on this machine and each Ray node's address otherwise.
    ``num_cpus``: logical CPUs of a local instance (default: what the nodes reserve). ``strategy``: the
    placement group strategy (PACK fills few machines; SPREAD / STRICT_SPREAD one node per machine).
    If Ray is already initialised in this process it is used as is and left running.
    """

    transport = "tcp"
    heartbeats = True

    def __init__(self, address: str | None = None, keys: str | None = None, bind_host: str | None = None,
                 num_cpus: int | None = None, strategy: str = "PACK", heartbeat_timeout_s: float = 10.0,
                 placement_timeout_s: float = 120.0) -> None:
        self.ray = require_ray()
        if address and address.startswith("ray://"):
            raise ValueError(f"--address {address!r}: Ray Client addresses are not supported; run dnilab on a "
                             "machine of the cluster (e.g. the head) with --address auto or HEAD_IP:6379")
        self.address = address
        self.keys = keys
        self.bind_host = bind_host
        self.num_cpus = num_cpus
        self.strategy = strategy
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.placement_timeout_s = placement_timeout_s
        self.host = bind_host or LOOPBACK   # where the supervisor binds; settled by place()
        self.node_bind_host: str | None = bind_host
        self.initialised_here = False
        self.pg: Any = None
        self._actor_cls: Any = None
        self.index: dict[str, int] = {}
        self.actors: dict[str, Any] = {}
        self.runs: dict[str, Any] = {}        # name -> ObjectRef of NodeActor.run
        self.info_refs: dict[str, Any] = {}
        self.infos: dict[str, dict[str, Any]] = {}
        self.codes: dict[str, int] = {}
        self.deaths: dict[str, str] = {}
        self.timings: dict[str, float] = {}  # seconds: ray_init, placement
        self.attempts: dict[str, int] = {}   # name -> restarts (a restarted actor takes the dead one's bundle)
        self.session_dir: str | None = None  # the local Ray instance's session folder, removed at shutdown

    # -- optional Launcher extras ---------------------------------------------------------------------
    def supervisor_kwargs(self, names: list[str]) -> dict[str, Any]:
        """CURVE wiring for every node and the supervisor, and a heartbeat timeout of a few seconds."""
        return {"wiring_extra": curve_wiring(names, self.keys), "heartbeat_timeout_s": self.heartbeat_timeout_s}

    @staticmethod
    def _bundle(spec: NodeSpec) -> dict[str, float]:
        bundle = {"CPU": float(spec.num_cpus), "GPU": float(spec.num_gpus)}
        bundle = {k: v for k, v in bundle.items() if v > 0}
        return bundle or {"CPU": 0.01}

    def _init(self, specs: list[NodeSpec]) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        t0 = time.monotonic()
        if self.address:
            ray.init(address=self.address, log_to_driver=True)
        else:
            need = sum(self._bundle(s).get("CPU", 0.0) for s in specs)
            ray.init(address="local", num_cpus=self.num_cpus or max(1, math.ceil(need)), include_dashboard=False,
                     log_to_driver=True)
        self.initialised_here = True
        if not self.address:
            with contextlib.suppress(Exception):  # private API: without it the session folder stays in /tmp/ray
                self.session_dir = ray._private.worker._global_node.get_session_dir_path()
        self.timings["ray_init"] = time.monotonic() - t0

    def place(self, specs: list[NodeSpec]) -> None:
        """Join or start Ray and reserve one bundle per node (gang placement); RunFailed if Ray cannot."""
        from ray.exceptions import GetTimeoutError
        from ray.util.placement_group import placement_group, placement_group_table

        ray = self.ray
        self._init(specs)
        t0 = time.monotonic()
        bundles = [self._bundle(s) for s in specs]
        need = {k: sum(b.get(k, 0.0) for b in bundles) for k in ("CPU", "GPU")}
        have = ray.cluster_resources()
        if not self.address and any(need[k] > have.get(k, 0.0) for k in need):
            raise RunFailed(f"the local Ray instance has {have.get('CPU', 0):g} CPUs and {have.get('GPU', 0):g} "
                            f"GPUs; the run's {len(specs)} nodes need {need['CPU']:g} and {need['GPU']:g} "
                            "(join a cluster with --address, or lower the agents' devices)")
        self.pg = placement_group(bundles, strategy=self.strategy)
        try:
            ray.get(self.pg.ready(), timeout=self.placement_timeout_s)
        except GetTimeoutError:
            raise RunFailed(f"Ray could not place the run's {len(specs)} nodes ({need['CPU']:g} CPUs, "
                            f"{need['GPU']:g} GPUs, strategy {self.strategy}) within {self.placement_timeout_s:.0f}"
                            f" s; cluster resources: {have}") from None
        self.index = {s.name: i for i, s in enumerate(specs)}
        here = ray.get_runtime_context().get_node_id()
        nodes = set(placement_group_table(self.pg).get("bundles_to_node_id", {}).values())
        if self.bind_host is None:
            all_here = nodes <= {here}
            self.host = LOOPBACK if all_here else ray.util.get_node_ip_address()
            self.node_bind_host = LOOPBACK if all_here else None
        self.timings["placement"] = time.monotonic() - t0

    # -- Launcher -------------------------------------------------------------------------------------
    def start(self, spec: NodeSpec, wiring: Wiring) -> None:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        if self.pg is None:
            raise RuntimeError("RayLauncher.place(specs) must run before start()")
        bundle = self._bundle(spec)
        if self._actor_cls is None:
            self._actor_cls = self.ray.remote(NodeActor)
        attempt = self.attempts[spec.name] = self.attempts.get(spec.name, -1) + 1  # > 0: a restart (supervisor)
        for record in (self.codes, self.deaths, self.infos):
            record.pop(spec.name, None)
        if spec.name in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(self.actors[spec.name], no_restart=True)
        actor = self._actor_cls.options(
            num_cpus=bundle.get("CPU", 0.0), num_gpus=bundle.get("GPU", 0.0), max_restarts=0,
            name=f"dnilab-{wiring.run_id}-{spec.name}" + (f"-{attempt}" if attempt else ""),
            scheduling_strategy=PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=self.index[
                spec.name]),
        ).remote()
        self.actors[spec.name] = actor
        self.info_refs[spec.name] = actor.info.remote()  # actor methods run in order: info before run
        self.runs[spec.name] = actor.run.remote(spec, wiring, self.node_bind_host)

    def _collect(self, timeout_s: float) -> None:
        pending = {ref: name for name, ref in self.runs.items() if name not in self.codes}
        if not pending:
            return
        ready, _ = self.ray.wait(list(pending), num_returns=len(pending), timeout=timeout_s)
        for ref in ready:
            name = pending[ref]
            try:
                self.codes[name] = int(self.ray.get(ref))
            except Exception as err:  # noqa: BLE001 - RayActorError & co: the actor is gone
                self.codes[name] = KILLED
                self.deaths[name] = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__

    def exitcodes(self) -> dict[str, int | None]:
        self._collect(0)
        return {name: self.codes.get(name) for name in self.runs}

    def describe(self, name: str) -> dict:
        if name not in self.infos and name in self.info_refs:
            with contextlib.suppress(Exception):
                self.infos[name] = self.ray.get(self.info_refs[name], timeout=5)
        where = dict(self.infos.get(name, {"node_ip": "unknown (the actor died before reporting)"}))
        if name in self.deaths:
            where["ray"] = self.deaths[name]
        return where

    def pump(self) -> bool:
        return False

    def shutdown(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the actors to return, kill them all, free the placement group, and
        leave Ray if this launcher joined or started it."""
        ray = self.ray
        with contextlib.suppress(Exception):
            self._collect(timeout_s)
        for actor in self.actors.values():
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        if self.pg is not None:
            from ray.util.placement_group import remove_placement_group

            with contextlib.suppress(Exception):
                remove_placement_group(self.pg)
            self.pg = None
        if self.initialised_here:
            ray.shutdown()
            self.initialised_here = False
            if self.session_dir:  # logs and sockets of the instance this run started
                shutil.rmtree(self.session_dir, ignore_errors=True)
                self.session_dir = None
