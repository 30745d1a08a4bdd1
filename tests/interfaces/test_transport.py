import os
import pickle
import tempfile
import threading
import time
import uuid

import pytest
import torch
import zmq

from interfaces import (
    CurveClient,
    CurveKeyPair,
    CurveServer,
    Expectations,
    Inbox,
    Kind,
    Message,
    Outlet,
    TensorSpec,
    WireError,
    make_endpoint,
)


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def _run_id():
    return uuid.uuid4().hex[:8]


def test_make_endpoint():
    assert make_endpoint("inproc", "r1", "l1") == "inproc://dnilab-r1-l1"
    assert make_endpoint("tcp", "r1", "l1") == "tcp://127.0.0.1:*"
    ipc = make_endpoint("ipc", "r1", "l1")
    assert ipc == f"ipc://{os.path.join(tempfile.gettempdir(), 'dnilab-r1-l1.sock')}"
    long = make_endpoint("ipc", "r" * 80, "n" * 80)
    assert len(long) - len("ipc://") <= 100 and long != make_endpoint("ipc", "r" * 80, "m" * 80)
    with pytest.raises(ValueError):
        make_endpoint("udp", "r", "n")  # type: ignore[arg-type]


@pytest.mark.parametrize("scheme", ["inproc", "ipc", "tcp"])
def test_round_trip(ctx, scheme):
    inbox = Inbox(ctx, make_endpoint(scheme, _run_id(), "l2"))
    if scheme == "tcp":
        assert not inbox.endpoint.endswith(":*") and int(inbox.endpoint.rsplit(":", 1)[1]) > 0
    outlet = Outlet(ctx, inbox.endpoint)
    big = torch.randn(2048, 2048)  # 16 MiB, zero-copy frames both ways
    small = torch.arange(10, dtype=torch.int64)
    assert outlet.send(Message(Kind.ACT, "l1", "l1->l2", 3, [big, small], {"phase": "train"}))
    assert outlet.send(Message(Kind.TARGET, "l1", "l1->l2", 4, [torch.ones(2).bfloat16()]))
    m = inbox.recv(timeout_ms=5000)
    assert m is not None and (m.kind, m.step, m.meta) == (Kind.ACT, 3, {"phase": "train"})
    assert torch.equal(m.tensors[0], big) and torch.equal(m.tensors[1], small)
    m2 = inbox.recv(timeout_ms=5000)
    assert m2 is not None and m2.tensors[0].dtype == torch.bfloat16
    assert inbox.recv(timeout_ms=10) is None
    outlet.close()
    inbox.close()


def test_recv_all_and_rejection(ctx):
    expect = Expectations()
    expect.allow(Kind.ACT, "a->b", "a")
    inbox = Inbox(ctx, make_endpoint("inproc", _run_id(), "b"), expect=expect)
    outlet = Outlet(ctx, inbox.endpoint)
    for s in range(3):
        outlet.send(Message(Kind.ACT, "a", "a->b", s))
    outlet.send(Message(Kind.ACT, "z", "a->b", 3))  # wrong sender
    outlet.send(Message(Kind.ACT, "a", "a->b", 4))
    inbox.socket.poll(1000)
    got = inbox.recv_all()  # stops before the bad message and keeps its error for the next call
    assert [m.step for m in got] == [0, 1, 2]
    with pytest.raises(WireError, match="from 'z' on edge 'a->b' at step 3: unexpected sender 'z'"):
        inbox.recv_all()
    assert inbox.rejected == 1
    m = inbox.recv(timeout_ms=1000)
    assert m is not None and m.step == 4
    inbox.close()
    outlet.close()


def test_nonblocking_send_when_peer_absent(ctx):
    outlet = Outlet(ctx, make_endpoint("ipc", _run_id(), "nobody"), hwm=4)
    msg = Message(Kind.ACT, "a", "a->b", 0, [torch.zeros(4)])
    results = [outlet.send(msg, block=False) for _ in range(10)]
    assert results[:4] == [True] * 4 and results[-1] is False
    outlet.close()


def test_close_does_not_hang(ctx):
    outlet = Outlet(ctx, make_endpoint("ipc", _run_id(), "gone"))
    outlet.send(Message(Kind.ACT, "a", "a->b", 0, [torch.zeros(1000)]), block=False)
    outlet.close()
    inbox = Inbox(ctx, make_endpoint("tcp", _run_id(), "x"))
    inbox.close()
    inbox.close()  # idempotent


def test_curve_keys_save_load(tmp_path):
    keys = CurveKeyPair.generate()
    pub, sec = keys.save(tmp_path, "alice")
    assert CurveKeyPair.load(tmp_path, "alice") == keys
    assert CurveKeyPair.load_public(tmp_path, "alice") == keys.public
    assert zmq.auth.load_certificate(pub) == (keys.public, None)
    assert oct(sec.stat().st_mode & 0o777) == "0o600"
    made = CurveKeyPair.create(tmp_path, "bob")
    assert len(made.public) == 40 and len(made.secret) == 40


def test_curve_allows_known_and_blocks_unknown(ctx):
    server, good, bad = CurveKeyPair.generate(), CurveKeyPair.generate(), CurveKeyPair.generate()
    inbox = Inbox(ctx, "tcp://127.0.0.1:*", curve=CurveServer(server, [good.public]))
    intruder = Outlet(ctx, inbox.endpoint, curve=CurveClient(bad, server.public))
    intruder.send(Message(Kind.ACT, "evil", "a->b", 0, [torch.zeros(3)]))
    assert inbox.recv(timeout_ms=500) is None
    plain = Outlet(ctx, inbox.endpoint)  # no CURVE at all
    plain.send(Message(Kind.ACT, "plain", "a->b", 0))
    assert inbox.recv(timeout_ms=300) is None
    friend = Outlet(ctx, inbox.endpoint, curve=CurveClient(good, server.public))
    friend.send(Message(Kind.ACT, "a", "a->b", 1, [torch.ones(3)]))
    m = inbox.recv(timeout_ms=5000)
    assert m is not None and m.sender == "a" and torch.equal(m.tensors[0], torch.ones(3))
    assert inbox.recv(timeout_ms=200) is None  # the intruder's message never arrives
    # a second CURVE inbox on the same context shares the authenticator but keeps its own allow-list
    inbox2 = Inbox(ctx, "tcp://127.0.0.1:*", curve=CurveServer(server, [bad.public]))
    o2 = Outlet(ctx, inbox2.endpoint, curve=CurveClient(bad, server.public))
    o2.send(Message(Kind.ACT, "b", "a->b", 2))
    assert inbox2.recv(timeout_ms=5000) is not None
    for s in (intruder, plain, friend, o2, inbox):
        s.close()
    auths = [t for t in threading.enumerate() if "AuthenticationThread" in type(t).__name__]
    assert auths and all(t.is_alive() for t in auths)  # inbox2 still uses it
    inbox2.close()
    for t in auths:
        t.join(timeout=2)
    assert not any(t.is_alive() for t in auths)  # the last CURVE inbox stopped it


def test_on_reject_skips_bad_messages_counts_them_per_sender_and_tracks_streaks(ctx):
    expect = Expectations()
    expect.allow(Kind.ACT, "a->b", "a", [TensorSpec(torch.float32, (None, 4))])
    seen = []
    inbox = Inbox(ctx, make_endpoint("inproc", _run_id(), "b"), expect=expect, on_reject=seen.append)
    raw = ctx.socket(zmq.PUSH)
    raw.connect(inbox.endpoint)
    outlet = Outlet(ctx, inbox.endpoint)
    raw.send(b"\x00not json")
    raw.send(pickle.dumps({"x": 1}))
    outlet.send(Message(Kind.ACT, "a", "a->b", 0, [torch.zeros(2, 3)]))  # wrong shape
    outlet.send(Message(Kind.TARGET, "a", "a->b", 1))                    # wrong kind
    inbox.socket.poll(1000)
    time.sleep(0.05)
    assert inbox.recv_all() == []
    assert inbox.rejected_by == {"?": 2, "a": 2} and inbox.streaks == {"?": 2, "a": 2} and len(seen) == 4
    outlet.send(Message(Kind.ACT, "a", "a->b", 2, [torch.zeros(2, 4)]))
    m = inbox.recv(timeout_ms=1000)
    assert m is not None and m.step == 2
    assert inbox.streaks == {"?": 2}  # an accepted message ends its sender's streak
    raw.close()
    outlet.close()
    inbox.close()


def test_frames_over_the_cap_never_arrive(ctx):
    inbox = Inbox(ctx, make_endpoint("ipc", _run_id(), "capped"), max_frame_bytes=1024)
    assert inbox.socket.maxmsgsize == 1024
    outlet = Outlet(ctx, inbox.endpoint)
    outlet.send(Message(Kind.ACT, "a", "a->b", 0, [torch.zeros(4096)]))   # 16 KiB frame: dropped by ZeroMQ
    outlet.close()
    outlet = Outlet(ctx, inbox.endpoint)
    outlet.send(Message(Kind.ACT, "a", "a->b", 1, [torch.zeros(16)]))
    m = inbox.recv(timeout_ms=3000)
    assert m is not None and m.step == 1
    outlet.close()
    inbox.close()
