"""ZeroMQ sockets for the data plane: each node binds one PULL `Inbox`, and connects one PUSH `Outlet`
per peer. Endpoints are inproc (one process), ipc (one machine) or tcp (several machines, with CURVE).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from .wire import Expectations, Message, WireError, decode, encode

_IPC_PATH_MAX = 100  # unix socket paths are limited to ~107 bytes


def make_endpoint(
    scheme: Literal["inproc", "ipc", "tcp"], run_id: str, name: str, host: str = "127.0.0.1"
) -> str:
    """The endpoint a node named `name` of run `run_id` binds its Inbox to."""
    if scheme == "inproc":
        return f"inproc://dnilab-{run_id}-{name}"
    if scheme == "ipc":
        path = os.path.join(tempfile.gettempdir(), f"dnilab-{run_id}-{name}.sock")
        if len(path) > _IPC_PATH_MAX:  # keep it unique but short
            digest = hashlib.sha1(f"{run_id}\0{name}".encode()).hexdigest()[:16]
            path = os.path.join(tempfile.gettempdir(), f"dnilab-{digest}.sock")
        if len(path) > _IPC_PATH_MAX:
            raise ValueError(f"temp dir {tempfile.gettempdir()!r} is too long for ipc socket paths")
        return f"ipc://{path}"
    if scheme == "tcp":
        return f"tcp://{host}:*"
    raise ValueError(f"unknown endpoint scheme {scheme!r} (expected inproc, ipc or tcp)")


# --- CURVE -----------------------------------------------------------------------------------------


@dataclass
class CurveKeyPair:
    """A CURVE key pair (z85 bytes), stored as zmq.auth certificate files `{name}.key[_secret]`."""

    public: bytes
    secret: bytes

    @classmethod
    def generate(cls) -> CurveKeyPair:
        public, secret = zmq.curve_keypair()
        return cls(public, secret)

    def save(self, directory: str | os.PathLike, name: str) -> tuple[Path, Path]:
        """Write `{name}.key` (public, shareable) and `{name}.key_secret` (mode 0600)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        pub, sec = d / f"{name}.key", d / f"{name}.key_secret"
        _write_cert(pub, "Public", self.public, None)
        fd = os.open(sec, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        _write_cert(sec, "**Secret**", self.public, self.secret)
        return pub, sec

    @classmethod
    def load(cls, directory: str | os.PathLike, name: str) -> CurveKeyPair:
        public, secret = zmq.auth.load_certificate(Path(directory) / f"{name}.key_secret")
        if secret is None:
            raise ValueError(f"no secret key in {Path(directory) / f'{name}.key_secret'}")
        return cls(public, secret)

    @staticmethod
    def load_public(directory: str | os.PathLike, name: str) -> bytes:
        """The public key of `name` (e.g. a client to allow), from `{name}.key`."""
        return zmq.auth.load_certificate(Path(directory) / f"{name}.key")[0]

    @classmethod
    def create(cls, directory: str | os.PathLike, name: str) -> CurveKeyPair:
        """Generate a pair with zmq.auth.create_certificates and load it back."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        zmq.auth.create_certificates(directory, name)
        return cls.load(directory, name)


def _write_cert(path: Path, banner: str, public: bytes, secret: bytes | None) -> None:
    lines = [
        f"#   ZeroMQ CURVE {banner} Certificate (dnilab)",
        "",
        "metadata",
        "curve",
        f'    public-key = "{public.decode()}"',
    ]
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode()}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class CurveServer:
    """Inbox side of CURVE: our keys + the client public keys (z85) allowed to connect."""

    keys: CurveKeyPair
    allowed_clients: list[bytes] = field(default_factory=list)


@dataclass
class CurveClient:
    """Outlet side of CURVE: our keys + the server's public key."""

    keys: CurveKeyPair
    server_public: bytes


class _AllowList:
    """zmq.auth credentials provider: accepts exactly the listed z85 public keys."""

    def __init__(self, keys: list[bytes]) -> None:
        self.keys = frozenset(keys)

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.keys


class _Auth:
    """One ThreadAuthenticator per context, shared by its CURVE inboxes (one ZAP domain each)."""

    _lock = threading.Lock()
    _by_ctx: dict[int, tuple[ThreadAuthenticator, set[str]]] = {}
    _ids = itertools.count()

    @classmethod
    def register(cls, ctx: zmq.Context, allowed: list[bytes]) -> str:
        with cls._lock:
            entry = cls._by_ctx.get(id(ctx))
            if entry is None or entry[0].context is not ctx or not entry[0].is_alive():
                auth = ThreadAuthenticator(ctx)
                auth.start()
                entry = (auth, set())
                cls._by_ctx[id(ctx)] = entry
            auth, domains = entry
            domain = f"dnilab-{os.getpid()}-{next(cls._ids)}"
            auth.configure_curve_callback(domain=domain, credentials_provider=_AllowList(allowed))
            domains.add(domain)
            return domain

    @classmethod
    def release(cls, ctx: zmq.Context, domain: str) -> None:
        """Forget `domain`; stop the authenticator when its last inbox closes."""
        with cls._lock:
            entry = cls._by_ctx.get(id(ctx))
            if entry is None:
                return
            auth, domains = entry
            domains.discard(domain)
            auth.credentials_providers.pop(domain, None)
            if not domains:
                del cls._by_ctx[id(ctx)]
                auth.stop()


# --- sockets ---------------------------------------------------------------------------------------


class Inbox:
    """One bound PULL socket; every peer's Outlet connects to it. Messages are validated by `expect`."""

    def __init__(
        self,
        ctx: zmq.Context,
        endpoint: str,
        expect: Expectations | None = None,
        curve: CurveServer | None = None,
        hwm: int = 1000,
        linger_ms: int = 0,
        on_reject: Callable[[WireError], None] | None = None,
        max_frame_bytes: int = -1,
    ) -> None:
        self.expect = expect
        self._ctx = ctx
        self._domain: str | None = None
        self._pending: WireError | None = None
        # on_reject None: a bad message raises WireError; else it is handed over and skipped (the inbox goes on)
        self.on_reject = on_reject
        self.rejected = 0  # messages that failed validation
        self.rejected_by: dict[str, int] = {}  # claimed sender ("?" if unreadable) -> rejections
        self.streaks: dict[str, int] = {}      # sender -> rejections since its last accepted message
        self._sock = ctx.socket(zmq.PULL)
        self._sock.linger = linger_ms
        self._sock.rcvhwm = hwm
        if max_frame_bytes >= 0:  # a bigger frame drops its connection inside ZeroMQ, before it is ever buffered
            self._sock.maxmsgsize = max_frame_bytes
        try:
            if curve is not None:
                self._domain = _Auth.register(ctx, list(curve.allowed_clients))
                self._sock.zap_domain = self._domain.encode()
                self._sock.curve_secretkey = curve.keys.secret
                self._sock.curve_publickey = curve.keys.public
                self._sock.curve_server = True
            self._sock.bind(endpoint)
            self.endpoint: str = (
                self._sock.getsockopt_string(zmq.LAST_ENDPOINT) if endpoint.startswith("tcp://") else endpoint
            )
        except Exception:
            self.close()
            raise

    def _decode(self, frames: list[bytes | zmq.Frame]) -> Message | None:
        """The message, or None when it was rejected and handed to ``on_reject``."""
        try:
            msg = decode(frames, self.expect)
        except WireError as err:
            self.count_rejection(err)
            if self.on_reject is None:
                raise
            self.on_reject(err)
            return None
        if self.streaks:
            self.streaks.pop(msg.sender, None)
        return msg

    def count_rejection(self, err: WireError) -> None:
        """Count a rejected message (also one its receiver refused after decoding it)."""
        self.rejected += 1
        self.rejected_by[err.sender] = self.rejected_by.get(err.sender, 0) + 1
        self.streaks[err.sender] = self.streaks.get(err.sender, 0) + 1

    def _raise_pending(self) -> None:
        if self._pending is not None:
            err, self._pending = self._pending, None
            raise err

    def _recv_frames(self, flags: int = 0) -> list[bytes | zmq.Frame]:
        """One multipart message: the small header frame as bytes (cheaper than a Frame object, and it is
        parsed at once), tensor frames as zero-copy Frames that the decoded tensors keep alive."""
        sock = self._sock
        frames: list[bytes | zmq.Frame] = [sock.recv(flags)]
        while sock.getsockopt(zmq.RCVMORE):  # not `sock.rcvmore`: pyzmq's attribute lookup costs more
            frames.append(sock.recv(copy=False))
        return frames

    def recv(self, timeout_ms: int | None = None) -> Message | None:
        """Next message, or None after `timeout_ms` (None = wait forever); WireError on bad input (or, with
        `on_reject`, None)."""
        self._raise_pending()
        if timeout_ms is not None and not self._sock.poll(timeout_ms, zmq.POLLIN):
            return None
        return self._decode(self._recv_frames())  # None if it was rejected (with on_reject)

    def recv_all(self, limit: int = 10_000) -> list[Message]:
        """Drain up to `limit` queued messages without waiting. A bad message stops the drain: it is
        raised at once if nothing was read yet, else on the next recv/recv_all (nothing is lost)."""
        self._raise_pending()
        out: list[Message] = []
        while len(out) < limit:
            try:
                frames = self._recv_frames(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                msg = self._decode(frames)
            except WireError as e:
                if not out:
                    raise
                self._pending = e
                break
            if msg is not None:
                out.append(msg)
        return out

    @property
    def socket(self) -> zmq.Socket:
        """The underlying PULL socket, e.g. to register with a zmq.Poller."""
        return self._sock

    def close(self) -> None:
        if not self._sock.closed:
            endpoint = getattr(self, "endpoint", "")  # unset when the bind failed
            if endpoint:  # unbind now: closing frees the address only later, on ZeroMQ's own thread
                with contextlib.suppress(zmq.ZMQError):
                    self._sock.unbind(endpoint)
            self._sock.close()
            if endpoint.startswith("ipc://"):  # ZeroMQ leaves the socket file behind
                with contextlib.suppress(OSError):
                    os.unlink(endpoint[len("ipc://"):])
        if self._domain is not None:
            _Auth.release(self._ctx, self._domain)
            self._domain = None


class Outlet:
    """One PUSH socket connected to a peer's Inbox. Messages queue (up to `hwm`) until the peer binds."""

    def __init__(
        self,
        ctx: zmq.Context,
        endpoint: str,
        curve: CurveClient | None = None,
        hwm: int = 1000,
        linger_ms: int = 100,
    ) -> None:
        self.endpoint = endpoint
        self._sock = ctx.socket(zmq.PUSH)
        self._sock.linger = linger_ms
        self._sock.sndhwm = hwm
        try:
            if curve is not None:
                self._sock.curve_secretkey = curve.keys.secret
                self._sock.curve_publickey = curve.keys.public
                self._sock.curve_serverkey = curve.server_public
            self._sock.connect(endpoint)
        except Exception:
            self._sock.close()
            raise

    def send(self, msg: Message, block: bool = True) -> bool:
        """Send msg; False = it would block (nothing sent, the caller counts a drop)."""
        frames = encode(msg)
        last = len(frames) - 1
        sock = self._sock
        try:  # only the first part can fail: zmq queues multipart messages atomically
            sock.send(frames[0], (zmq.SNDMORE if last else 0) | (0 if block else zmq.NOBLOCK))
        except zmq.Again:
            return False
        for i in range(1, last + 1):
            frame = frames[i]
            # `encode` returns memoryviews only for big frames: zero-copy pays off for those alone
            sock.send(frame, zmq.SNDMORE if i < last else 0, copy=type(frame) is not memoryview)
        return True

    def close(self) -> None:
        if not self._sock.closed:
            self._sock.close()
