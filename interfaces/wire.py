"""The wire format: one compact JSON header frame + one raw frame per tensor, never pickle.

Decoding is zero-copy (tensors are read-only views of the received frames) and strict: a malformed
or unexpected message raises `WireError` naming sender, edge and step, so a bad peer is easy to find.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import torch

WIRE_VERSION = 1
ZERO_COPY_MIN_BYTES = 64 * 1024  # frames at least this big go out as memoryviews (zero-copy)

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
_DTYPE_NAMES: dict[torch.dtype, str] = {v: k for k, v in _DTYPES.items()}
# numpy has no bfloat16: its bytes travel through a same-width integer view.
_NUMPY_VIEW: dict[torch.dtype, torch.dtype] = {torch.bfloat16: torch.int16}
_HEADER_FIELDS = ("v", "kind", "sender", "edge", "step", "tensors", "meta")


class Kind(str, Enum):  # noqa: UP042 (StrEnum needs Python 3.11; we support 3.10)
    """The few message kinds that may cross an edge."""

    INPUT = "input"
    LABEL = "label"
    ACT = "act"
    TARGET = "target"
    CONTROL = "control"


_KINDS = {k.value: k for k in Kind}


@dataclass
class Message:
    """One typed message; `tensors` decode as read-only CPU views (clone before in-place ops)."""

    kind: Kind
    sender: str
    edge: str
    step: int
    tensors: list[torch.Tensor] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


class WireError(ValueError):
    """A message was rejected; carries whatever of sender/edge/step could be read ("?" otherwise)."""

    def __init__(
        self, reason: str, sender: str = "?", edge: str = "?", step: int | str = "?", kind: str | None = None
    ) -> None:
        self.reason = reason
        self.sender = sender
        self.edge = edge
        self.step = step
        self.kind = kind
        what = kind if kind else "message"
        super().__init__(f"rejected {what} from {sender!r} on edge {edge!r} at step {step}: {reason}")


@dataclass(frozen=True)
class TensorSpec:
    """Expected dtype and per-axis size of one tensor; None on an axis = any size (the batch axis)."""

    dtype: torch.dtype
    shape: tuple[int | None, ...]

    def matches(self, dtype: torch.dtype, shape: Sequence[int]) -> bool:
        return (
            dtype == self.dtype
            and len(shape) == len(self.shape)
            and all(e is None or e == s for e, s in zip(self.shape, shape))
        )


def _fmt_shape(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"


class Expectations:
    """What one receiver accepts: (kind, edge) -> allowed senders -> tensor specs (None = any)."""

    def __init__(self, max_tensor_bytes: int | None = None) -> None:
        self._rules: dict[tuple[Kind, str], dict[str, tuple[TensorSpec, ...] | None]] = {}
        self._passed: set[tuple] = set()  # (kind, sender, edge, specs) seen to pass: a stream repeats them
        # a header announcing a bigger tensor is rejected before any frame is looked at (None: no cap)
        self.max_tensor_bytes = max_tensor_bytes

    def allow(self, kind: Kind, edge: str, sender: str, specs: Sequence[TensorSpec] | None = None) -> None:
        """Accept `kind` on `edge` from `sender`; supervisor CONTROL uses edge "", credits their data edge."""
        kind = Kind(kind)
        self._rules.setdefault((kind, edge), {})[sender] = None if specs is None else tuple(specs)
        self._passed.clear()

    def check(
        self,
        kind: Kind,
        sender: str,
        edge: str,
        step: int,
        tensors: Sequence[tuple[torch.dtype, Sequence[int]]] = (),
    ) -> None:
        """Raise WireError unless this (kind, edge, sender) is allowed and tensors fit the specs."""
        key = (kind, sender, edge, tuple((dtype, tuple(shape)) for dtype, shape in tensors))
        if key in self._passed:
            return
        self._check(Kind(kind), sender, edge, step, tensors)
        if len(self._passed) >= 4096:
            self._passed.clear()
        self._passed.add(key)

    def _check(self, kind: Kind, sender: str, edge: str, step: int,
               tensors: Sequence[tuple[torch.dtype, Sequence[int]]]) -> None:
        """`check` without the cache of passed signatures."""

        def fail(reason: str) -> WireError:
            return WireError(reason, sender, edge, step, kind.value)

        if self.max_tensor_bytes is not None:
            for i, (dtype, shape) in enumerate(tensors):
                nbytes = math.prod(shape) * dtype.itemsize
                if nbytes > self.max_tensor_bytes:
                    raise fail(f"tensor {i} announces {nbytes} bytes, more than the {self.max_tensor_bytes} "
                               "this receiver accepts")
        senders = self._rules.get((kind, edge))
        if senders is None:
            raise fail(f"unexpected {kind.value} on edge {edge!r}")
        if sender not in senders:
            allowed = ", ".join(repr(s) for s in sorted(senders))
            raise fail(f"unexpected sender {sender!r} for {kind.value} on edge {edge!r} (expected {allowed})")
        specs = senders[sender]
        if specs is None:
            return
        if len(tensors) != len(specs):
            raise fail(f"got {len(tensors)} tensors, expected {len(specs)}")
        for i, ((dtype, shape), spec) in enumerate(zip(tensors, specs)):
            if dtype != spec.dtype:
                raise fail(
                    f"tensor {i} has dtype {_DTYPE_NAMES.get(dtype, dtype)}, "
                    f"expected {_DTYPE_NAMES.get(spec.dtype, spec.dtype)}"
                )
            if not spec.matches(dtype, shape):
                raise fail(f"tensor {i} has shape {_fmt_shape(shape)}, expected {_fmt_shape(spec.shape)}")

    def largest_tensor_bytes(self, max_batch: int) -> int | None:
        """Bytes of the biggest tensor any rule accepts, free axes counted as ``max_batch``; None when some data
        rule accepts any tensors (no bound can be given). Control rules carry no tensors."""
        largest = 0
        for (kind, _), senders in self._rules.items():
            for specs in senders.values():
                if specs is None:
                    if kind is not Kind.CONTROL:
                        return None
                    continue
                for spec in specs:
                    n = math.prod(max_batch if e is None else e for e in spec.shape) * spec.dtype.itemsize
                    largest = max(largest, n)
        return largest


def _tensor_frame(t: torch.Tensor) -> bytes | memoryview:
    """Raw bytes of t; moves/copies only when needed; big frames stay views for zero-copy sends."""
    if t.nbytes < ZERO_COPY_MIN_BYTES:
        try:  # the common case, CPU tensors of numpy dtypes, in one copy (tobytes follows any strides)
            return t.numpy().tobytes()
        except (RuntimeError, TypeError):  # needs grad, not on the CPU, or bfloat16
            pass
    if t.device.type != "cpu":
        t = t.cpu()
    if not t.is_contiguous():
        t = t.contiguous()
    if t.requires_grad:
        t = t.detach()
    view = _NUMPY_VIEW.get(t.dtype)
    arr = (t.view(view) if view is not None else t).reshape(-1).numpy()  # 1-D, shares storage
    mv = memoryview(arr).cast("B")
    return mv if mv.nbytes >= ZERO_COPY_MIN_BYTES else mv.tobytes()


_JSON = json.JSONEncoder(separators=(",", ":"))  # one encoder: json.dumps builds a new one per call
_PREFIXES: dict[tuple, bytes] = {}                # (kind, sender, edge, specs) -> header up to "step"
_PREFIXES_MAX = 4096


def _header_prefix(kind: str, sender: str, edge: str, specs: tuple) -> bytes:
    """The constant part of a header; a stream repeats it every step, so it is built once."""
    key = (kind, sender, edge, specs)
    prefix = _PREFIXES.get(key)
    if prefix is None:
        tensors = [{"dtype": d, "shape": list(shape)} for d, shape in specs]
        prefix = (f'{{"v":{WIRE_VERSION},"kind":{_JSON.encode(kind)},"sender":{_JSON.encode(sender)},'
                  f'"edge":{_JSON.encode(edge)},"tensors":{_JSON.encode(tensors)},"step":').encode()
        if len(_PREFIXES) >= _PREFIXES_MAX:
            _PREFIXES.clear()
        _PREFIXES[key] = prefix
    return prefix


def encode(msg: Message) -> list[bytes | memoryview]:
    """Frames for `msg`: [JSON header, tensor 0 bytes, ...]. Large frames alias the tensors' memory,
    so do not modify a sent CPU tensor in place until the send completed."""
    specs = []
    for t in msg.tensors:
        name = _DTYPE_NAMES.get(t.dtype)
        if name is None:
            kind = Kind(msg.kind).value
            raise WireError(f"unsupported dtype {t.dtype}", msg.sender, msg.edge, msg.step, kind)
        specs.append((name, tuple(t.shape)))
    kind = msg.kind.value if type(msg.kind) is Kind else Kind(msg.kind).value
    prefix = _header_prefix(kind, msg.sender, msg.edge, tuple(specs))
    step = str(msg.step) if type(msg.step) is int else _JSON.encode(msg.step)
    meta = "{}" if type(msg.meta) is dict and not msg.meta else _JSON.encode(msg.meta)
    frames: list[bytes | memoryview] = [prefix + f'{step},"meta":{meta}}}'.encode()]
    frames.extend(_tensor_frame(t) for t in msg.tensors)
    return frames


def _buffer(frame: Any) -> memoryview:
    """A byte view of a frame whose `.obj` keeps the frame alive (zmq.Frame, bytes or memoryview)."""
    buf = getattr(frame, "buffer", None)  # zmq.Frame
    mv = buf if isinstance(buf, memoryview) else memoryview(frame)
    return mv if mv.format == "B" and mv.ndim == 1 else mv.cast("B")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


_NP_DTYPES: dict[torch.dtype, np.dtype] = {
    d: np.dtype(n) for d, n in ((torch.float32, "float32"), (torch.float16, "float16"), (torch.float64, "float64"),
                                (torch.int64, "int64"), (torch.int32, "int32"), (torch.uint8, "uint8"),
                                (torch.bool, "bool"))
}


def _tensor_from(mv: memoryview, dtype: torch.dtype, shape: list[int]) -> torch.Tensor:
    if mv.nbytes == 0:  # frombuffer refuses empty buffers
        return torch.empty(shape, dtype=dtype)
    if mv.readonly:  # e.g. bytes: torch warns that the view is writable; we document it as read-only
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            t = torch.frombuffer(mv, dtype=dtype)
        return t.view(shape)
    np_dtype = _NP_DTYPES.get(dtype)
    if np_dtype is not None:  # numpy's frombuffer + from_numpy is ~2x cheaper than torch.frombuffer + view
        return torch.from_numpy(np.frombuffer(mv, dtype=np_dtype).reshape(shape))
    return torch.frombuffer(mv, dtype=dtype).view(shape)  # the tensor holds mv, which holds the frame


_JSON_DECODE = json.JSONDecoder().decode  # json.loads(bytes) also sniffs UTF-16/32; the wire is UTF-8


def _parse_header(raw: Any) -> dict[str, Any]:
    try:
        header = _JSON_DECODE((raw if isinstance(raw, bytes) else bytes(_buffer(raw))).decode())
    except (ValueError, TypeError) as e:
        raise WireError(f"header is not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise WireError(f"header is a JSON {type(header).__name__}, expected an object")
    return header


def _fast_specs(h: dict[str, Any]) -> list[tuple[torch.dtype, list[int]]] | None:
    """The tensor specs of a well-formed header, or None: then `_validate` finds and names the fault.

    The same checks as `_validate`, done with exact type tests and no error bookkeeping, because every
    message of every stream passes here."""
    if (type(h.get("v")) is not int or h["v"] != WIRE_VERSION or type(h.get("kind")) is not str
            or h["kind"] not in _KINDS or type(h.get("sender")) is not str or type(h.get("edge")) is not str
            or type(h.get("step")) is not int or h["step"] < -1 or type(h.get("meta")) is not dict):
        return None
    tensors = h.get("tensors")
    if type(tensors) is not list:
        return None
    specs = []
    for spec in tensors:
        if type(spec) is not dict:
            return None
        name, shape = spec.get("dtype"), spec.get("shape")
        dtype = _DTYPES.get(name) if type(name) is str else None
        if dtype is None or type(shape) is not list:
            return None
        for n in shape:
            if type(n) is not int or n < 0:
                return None
        specs.append((dtype, shape))
    return specs


_STEP_KEY, _META_KEY = b',"step":', b',"meta":'
_EMPTY_META_END = b"{}}"
# A stream repeats its header up to "step". Once such a prefix has been parsed in full, found well-formed
# and identical to what `encode` writes for its fields, later headers with that prefix skip the JSON
# parse: prefix -> (kind, sender, edge, [(dtype, shape)] for `Expectations.check`, [(dtype, shape, nbytes)]).
_SIGNATURES: dict[bytes, tuple[Kind, str, str, list[tuple[torch.dtype, list[int]]],
                               list[tuple[torch.dtype, list[int], int]]]] = {}
_SIGNATURES_MAX = 4096


def _known_signature(raw: bytes) -> tuple[tuple, int, dict[str, Any]] | None:
    """(signature, step, meta) of a header whose prefix is known and whose tail is exactly
    `<step>,"meta":<object>}`; None sends it through the full parse (which names any fault)."""
    cut = raw.find(_STEP_KEY) + len(_STEP_KEY)
    sig = _SIGNATURES.get(raw[:cut]) if cut >= len(_STEP_KEY) else None
    if sig is None:
        return None
    end = raw.find(_META_KEY, cut)
    digits = raw[cut:end]
    if end < 0 or not (digits.isdigit() and (digits[0] != 48 or len(digits) == 1) or digits == b"-1"):
        return None  # 48 = "0": JSON has no leading zeros
    tail = raw[end + len(_META_KEY):]
    if tail == _EMPTY_META_END:
        return sig, int(digits), {}
    try:
        meta = _JSON_DECODE(tail[:-1].decode()) if tail.endswith(b"}") else None
    except (ValueError, TypeError):
        return None
    return (sig, int(digits), meta) if type(meta) is dict else None


def _remember_signature(raw: bytes, h: dict[str, Any], specs: list[tuple[torch.dtype, list[int]]],
                        sized: list[tuple[torch.dtype, list[int], int]]) -> None:
    names = tuple((_DTYPE_NAMES[dtype], tuple(shape)) for dtype, shape in specs)
    prefix = _header_prefix(h["kind"], h["sender"], h["edge"], names)
    if raw.startswith(prefix):
        if len(_SIGNATURES) >= _SIGNATURES_MAX:
            _SIGNATURES.clear()
        _SIGNATURES[prefix] = (_KINDS[h["kind"]], h["sender"], h["edge"], specs, sized)


def _views(sized: Sequence[tuple[torch.dtype, list[int], int]], frames: Sequence[Any]) -> list[torch.Tensor] | None:
    """Zero-copy tensors of the tensor frames, or None if a frame has the wrong size (`_validate` names it)."""
    tensors = []
    for (dtype, shape, nbytes), frame in zip(sized, frames[1:]):
        mv = _buffer(frame)
        if mv.nbytes != nbytes:
            return None
        tensors.append(_tensor_from(mv, dtype, shape))
    return tensors


def decode(frames: Sequence[Any], expect: Expectations | None = None) -> Message:
    """Validate and decode frames (bytes, memoryview or zmq.Frame) into a Message; WireError otherwise."""
    if len(frames) == 0:
        raise WireError("no frames")
    raw = frames[0] if type(frames[0]) is bytes else None
    known = _known_signature(raw) if raw is not None else None
    if known is not None:
        (kind, sender, edge, specs, sized), step, meta = known
        if len(frames) == 1 + len(sized):
            if expect is not None:
                expect.check(kind, sender, edge, step, specs)
            tensors = _views(sized, frames)
            if tensors is not None:
                return Message(kind, sender, edge, step, tensors, meta)
    h = _parse_header(frames[0])
    specs = _fast_specs(h)
    if specs is not None and len(frames) == 1 + len(specs):
        if expect is not None:
            expect.check(_KINDS[h["kind"]], h["sender"], h["edge"], h["step"], specs)
        sized = [(dtype, shape, math.prod(shape) * dtype.itemsize) for dtype, shape in specs]
        tensors = _views(sized, frames)
        if tensors is not None:
            if raw is not None:
                _remember_signature(raw, h, specs, sized)
            return Message(_KINDS[h["kind"]], h["sender"], h["edge"], h["step"], tensors, h["meta"])
    return _validate(h, frames, expect)


def _validate(h: dict[str, Any], frames: Sequence[Any], expect: Expectations | None) -> Message:
    """The careful path: every check in order, raising a WireError that names the first fault."""
    sender = h.get("sender") if isinstance(h.get("sender"), str) else "?"
    edge = h.get("edge") if isinstance(h.get("edge"), str) else "?"
    step = h.get("step") if _is_int(h.get("step")) else "?"
    kind_name = h.get("kind") if isinstance(h.get("kind"), str) and h.get("kind") in _KINDS else None

    def fail(reason: str) -> WireError:
        return WireError(reason, sender, edge, step, kind_name)

    missing = [f for f in _HEADER_FIELDS if f not in h]
    if missing:
        raise fail(f"header misses field(s) {', '.join(missing)}")
    if not _is_int(h["v"]) or h["v"] != WIRE_VERSION:
        raise fail(f"unsupported wire version {h['v']!r}")
    for name, ok, want in (
        ("kind", isinstance(h["kind"], str), "a string"),
        ("sender", isinstance(h["sender"], str), "a string"),
        ("edge", isinstance(h["edge"], str), "a string"),
        ("step", _is_int(h["step"]), "an integer"),
        ("tensors", isinstance(h["tensors"], list), "a list"),
        ("meta", isinstance(h["meta"], dict), "an object"),
    ):
        if not ok:
            raise fail(f"field {name!r} is {type(h[name]).__name__}, expected {want}")
    if kind_name is None:
        raise fail(f"unknown kind {h['kind']!r}")
    if h["step"] < -1:
        raise fail(f"step {h['step']} is below -1")
    specs: list[tuple[torch.dtype, list[int]]] = []
    for i, spec in enumerate(h["tensors"]):
        if not isinstance(spec, dict) or not isinstance(spec.get("dtype"), str):
            raise fail(f"tensor {i} spec must be an object with a string dtype")
        dtype = _DTYPES.get(spec["dtype"])
        if dtype is None:
            raise fail(f"tensor {i} has unsupported dtype {spec['dtype']!r}")
        shape = spec.get("shape")
        if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
            raise fail(f"tensor {i} shape must be a list of non-negative integers, got {shape!r}")
        specs.append((dtype, shape))
    if len(frames) != 1 + len(specs):
        raise fail(f"header announces {len(specs)} tensor frame(s), got {len(frames) - 1}")
    if expect is not None:
        expect.check(_KINDS[kind_name], sender, edge, step, specs)
    tensors = []
    for i, ((dtype, shape), frame) in enumerate(zip(specs, frames[1:])):
        mv = _buffer(frame)
        want = math.prod(shape) * dtype.itemsize
        if mv.nbytes != want:
            raise fail(
                f"tensor {i} frame has {mv.nbytes} bytes, expected {want} for "
                f"{_DTYPE_NAMES[dtype]} {_fmt_shape(shape)}"
            )
        tensors.append(_tensor_from(mv, dtype, shape))
    return Message(_KINDS[kind_name], sender, edge, step, tensors, h["meta"])
