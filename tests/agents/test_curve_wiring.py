"""CURVE on tcp runs: per-run keys (or a key directory), allow-lists of the run's members, and a peer with
an unknown key that can neither send into a run nor receive from it, at the socket level and in a real
supervised run over tcp."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch
import zmq

from agents import LocalLauncher, Node, NodeSpec, Supervisor, curve_wiring
from interfaces import CurveClient, CurveKeyPair, CurveServer, Expectations, Inbox, Kind, Message, Outlet

NAMES = ["env", "l1", "head"]


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def test_curve_wiring_gives_every_member_its_keys_and_everyone_s_public_key():
    extra = curve_wiring(NAMES)
    members = [*NAMES, "supervisor"]
    assert set(extra) == set(members)
    publics = {m: extra[m]["curve_server"].keys.public for m in members}
    assert len(set(publics.values())) == len(members)  # one pair each
    secrets = {m: extra[m]["curve_server"].keys.secret for m in members}
    for me in members:
        server: CurveServer = extra[me]["curve_server"]
        assert sorted(server.allowed_clients) == sorted(publics.values())
        clients: dict[str, CurveClient] = extra[me]["curve_clients"]
        assert set(clients) == set(members) - {me}
        for peer, client in clients.items():
            assert client.keys.public == publics[me] and client.keys.secret == secrets[me]  # only its own secret
            assert client.server_public == publics[peer]
    assert curve_wiring(NAMES)["l1"]["curve_server"].keys != extra["l1"]["curve_server"].keys  # fresh per run
    with pytest.raises(ValueError, match="supervisor"):
        curve_wiring(["supervisor"])


def test_key_directory_is_created_once_then_reused(tmp_path):
    first = curve_wiring(NAMES, tmp_path)
    assert oct((tmp_path / "l1.key_secret").stat().st_mode & 0o777) == "0o600"
    assert (tmp_path / "supervisor.key").is_file()
    again = curve_wiring(NAMES, tmp_path)
    for m in [*NAMES, "supervisor"]:
        assert again[m]["curve_server"].keys == first[m]["curve_server"].keys
    # a key pair put there by hand (e.g. zmq.auth.create_certificates) is used as is
    mine = CurveKeyPair.create(tmp_path / "custom", "head")
    assert curve_wiring(["head"], tmp_path / "custom")["head"]["curve_server"].keys == mine


def test_unknown_key_gets_nothing_and_sends_nothing_accepted(ctx):
    extra = curve_wiring(["a", "b"])
    inbox_b = Inbox(ctx, "tcp://127.0.0.1:*", curve=extra["b"]["curve_server"])
    intruder = CurveKeyPair.generate()
    # 1. an outsider who knows b's address and public key cannot send into b
    evil = Outlet(ctx, inbox_b.endpoint, curve=CurveClient(intruder, extra["b"]["curve_server"].keys.public))
    evil.send(Message(Kind.ACT, "a", "a->b", 0, [torch.zeros(2)], {"forged": True}))
    plain = Outlet(ctx, inbox_b.endpoint)  # no CURVE at all
    plain.send(Message(Kind.ACT, "a", "a->b", 0, [], {"forged": True}))
    # 2. ... while a, a member, can
    good = Outlet(ctx, inbox_b.endpoint, curve=extra["a"]["curve_clients"]["b"])
    good.send(Message(Kind.ACT, "a", "a->b", 1, [torch.ones(2)]))
    got = inbox_b.recv(timeout_ms=5000)
    assert got is not None and got.step == 1 and not got.meta.get("forged")
    assert inbox_b.recv(timeout_ms=500) is None
    # 3. an impostor listening where a member sends (without that member's secret key) receives nothing
    impostor = Inbox(ctx, "tcp://127.0.0.1:*",
                     curve=CurveServer(intruder, [extra["a"]["curve_server"].keys.public]))
    fooled = Outlet(ctx, impostor.endpoint, curve=extra["a"]["curve_clients"]["b"])
    fooled.send(Message(Kind.ACT, "a", "a->b", 2, [torch.ones(2)]))
    assert impostor.recv(timeout_ms=1000) is None
    impostor_plain = Inbox(ctx, "tcp://127.0.0.1:*")
    fooled2 = Outlet(ctx, impostor_plain.endpoint, curve=extra["a"]["curve_clients"]["b"])
    fooled2.send(Message(Kind.ACT, "a", "a->b", 3, [torch.ones(2)]))
    assert impostor_plain.recv(timeout_ms=1000) is None
    for s in (evil, plain, good, fooled, fooled2, impostor, impostor_plain, inbox_b):
        s.close()


# --- a real supervised run over tcp (local processes): CURVE on every link -------------------------------


class Sender(Node):
    """Sends one genuine act to ``b`` at start."""

    name = "a"

    def peers(self) -> list[str]:
        return ["b"]

    def start(self, rt: Any) -> None:
        super().start(rt)
        rt.send("b", Message(Kind.ACT, "a", "a->b", 0, [torch.ones(2)]))

    def on_message(self, msg: Message) -> None:
        pass


class Receiver(Node):
    """Counts genuine and forged acts for 3 s after start, then says complete with the counts."""

    name = "b"

    def __init__(self) -> None:
        self.genuine = 0
        self.forged = 0
        self.t0 = 0.0
        self.reported = False

    def expectations(self) -> Expectations:
        e = Expectations()
        e.allow(Kind.ACT, "a->b", "a")
        return e

    def start(self, rt: Any) -> None:
        super().start(rt)
        self.t0 = time.monotonic()
        rt.tell("metrics", supervisor=rt.wiring.supervisor, inbox=rt.inbox.endpoint)

    def on_message(self, msg: Message) -> None:
        if msg.meta.get("forged"):
            self.forged += 1
        else:
            self.genuine += 1

    def work(self) -> bool:
        if not self.reported and time.monotonic() - self.t0 > 3.0:
            self.reported = True
            self.rt.tell("complete", genuine=self.genuine, forged=self.forged)
            return True
        return False


class IntruderRecorder:
    """Records what the supervisor hears; when b tells its endpoints, an intruder forges messages to both
    b's inbox and the supervisor's control inbox (a fake 'complete' from b)."""

    def __init__(self, ctx: zmq.Context) -> None:
        self.ctx = ctx
        self.events: list[tuple[str, str, dict]] = []
        self.attacked = False

    def record(self, sender: str, verb: str, step: int, meta: dict[str, Any]) -> None:
        self.events.append((sender, verb, dict(meta)))
        if verb == "metrics" and sender == "b" and not self.attacked:
            self.attacked = True
            keys = CurveKeyPair.generate()
            for endpoint, msg in (
                (meta["inbox"], Message(Kind.ACT, "a", "a->b", 0, [torch.ones(2)], {"forged": True})),
                (meta["supervisor"], Message(Kind.CONTROL, "b", "", 0, [], {"verb": "complete", "forged": True})),
            ):
                for curve in (None, CurveClient(keys, b"0" * 40)):  # plain, and CURVE with a made-up key
                    out = Outlet(self.ctx, endpoint, curve=curve, linger_ms=0)
                    out.send(msg, block=False)
                    out.close()


def test_tcp_run_uses_curve_and_ignores_an_intruder(ctx):
    launcher = LocalLauncher(transport="tcp")
    specs = [NodeSpec("a", f"{__name__}:Sender"), NodeSpec("b", f"{__name__}:Receiver", required=True)]
    kwargs = launcher.supervisor_kwargs([s.name for s in specs])
    assert set(kwargs["wiring_extra"]) == {"a", "b", "supervisor"}
    recorder = IntruderRecorder(ctx)
    outcome = Supervisor(specs, launcher, recorder, "curvetest", ctx=ctx, **kwargs).run()
    assert outcome.status == "completed", outcome.error
    assert recorder.attacked
    readies = {s: m for s, v, m in recorder.events if v == "ready"}
    assert all(m["endpoint"].startswith("tcp://127.0.0.1:") for m in readies.values())
    completes = [{k: v for k, v in m.items() if k != "verb"} for s, v, m in recorder.events if v == "complete"]
    assert completes == [{"genuine": 1, "forged": 0}]  # the forged 'complete' never reached the supervisor
    assert LocalLauncher(transport="ipc").supervisor_kwargs(["a"]) == {}  # ipc: file permissions, no CURVE
