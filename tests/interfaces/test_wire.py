import json

import pytest
import torch

from interfaces import Expectations, Kind, Message, TensorSpec, WireError, decode, encode, wire


def _header(frames):
    return json.loads(bytes(frames[0]))


def _frames(header, *tensor_frames):
    return [json.dumps(header).encode(), *tensor_frames]


def _act(*tensors, sender="l1", edge="l1->l2", step=17):
    return Message(Kind.ACT, sender, edge, step, list(tensors))


@pytest.mark.parametrize(
    "tensor",
    [
        torch.randn(4, 3),
        torch.randn(2, 3).half(),
        torch.randn(5, 7).bfloat16(),
        torch.randn(3, 2, dtype=torch.float64),
        torch.arange(6, dtype=torch.int64).reshape(2, 3),
        torch.arange(6, dtype=torch.int32),
        torch.arange(200, dtype=torch.uint8),
        torch.tensor([True, False, True]),
        torch.tensor(3.5),  # 0-d
        torch.empty(0, 256),  # empty batch
        torch.randn(300, 300),  # big frame: zero-copy path
        torch.randn(6, 4).t(),  # non-contiguous
    ],
)
def test_round_trip(tensor):
    msg = _act(tensor, torch.ones(2, dtype=torch.int64))
    msg.meta = {"phase": "train", "n": 3}
    out = decode(encode(msg))
    assert (out.kind, out.sender, out.edge, out.step, out.meta) == (Kind.ACT, "l1", "l1->l2", 17, msg.meta)
    assert out.tensors[0].dtype == tensor.dtype and out.tensors[0].shape == tensor.shape
    assert torch.equal(out.tensors[0], tensor)
    assert torch.equal(out.tensors[1], torch.ones(2, dtype=torch.int64))


def test_big_frames_are_views_small_are_bytes():
    frames = encode(_act(torch.randn(256, 256), torch.randn(3)))
    assert isinstance(frames[0], bytes)
    assert isinstance(frames[1], memoryview) and frames[1].nbytes == 256 * 256 * 4
    assert isinstance(frames[2], bytes)


def test_requires_grad_and_control_message():
    x = torch.randn(3, requires_grad=True)
    out = decode(encode(Message(Kind.CONTROL, "sup", "", -1, [x * 2], {"verb": "stop"})))
    assert out.kind is Kind.CONTROL and out.step == -1 and out.meta == {"verb": "stop"}
    assert torch.allclose(out.tensors[0], x.detach() * 2)


def test_unsupported_dtype_on_encode():
    with pytest.raises(WireError, match="unsupported dtype"):
        encode(_act(torch.zeros(2, dtype=torch.complex64)))


def _rejects(frames, match, expect=None, sender="'l1'", edge="'l1->l2'", step="17"):
    with pytest.raises(WireError, match=match) as info:
        decode(frames, expect)
    text = str(info.value)
    assert f"from {sender}" in text and f"on edge {edge}" in text and f"at step {step}" in text, text
    return info.value


GOOD = encode(_act(torch.zeros(2, 3)))
H = _header(GOOD)


def test_reject_non_json_and_non_object():
    _rejects([b"\xff not json"], "not valid JSON", sender="'?'", edge="'?'", step="?")
    _rejects([b"[1, 2]"], "expected an object", sender="'?'", edge="'?'", step="?")
    _rejects([], "no frames", sender="'?'", edge="'?'", step="?")


@pytest.mark.parametrize("field", ["v", "kind", "sender", "edge", "step", "tensors", "meta"])
def test_reject_missing_field(field):
    h = dict(H)
    del h[field]
    kw = {"sender": "'?'"} if field == "sender" else {"edge": "'?'"} if field == "edge" else {}
    if field == "step":
        kw["step"] = "?"
    _rejects(_frames(h, GOOD[1]), f"misses field.*{field}", **kw)


@pytest.mark.parametrize(
    "field,value",
    [
        ("kind", 3),
        ("sender", 1),
        ("edge", None),
        ("step", "17"),
        ("step", True),
        ("tensors", {}),
        ("meta", []),
    ],
)
def test_reject_wrong_typed_field(field, value):
    h = dict(H, **{field: value})
    kw = {}
    if field == "sender":
        kw["sender"] = "'?'"
    if field == "edge":
        kw["edge"] = "'?'"
    if field == "step":
        kw["step"] = "?"
    err = _rejects(_frames(h, GOOD[1]), f"field '{field}'", **kw)
    assert err.kind in (None, "act")


def test_reject_unknown_kind_version_and_bad_step():
    _rejects(_frames(dict(H, kind="gossip"), GOOD[1]), "unknown kind 'gossip'")
    _rejects(_frames(dict(H, v=2), GOOD[1]), "unsupported wire version")
    _rejects(_frames(dict(H, step=-5), GOOD[1]), "below -1", step="-5")


def test_reject_unsupported_dtype_and_bad_shape():
    _rejects(_frames(dict(H, tensors=[{"dtype": "complex64", "shape": [2]}]), b"x" * 16), "unsupported dtype")
    _rejects(_frames(dict(H, tensors=[{"dtype": "float32", "shape": [2, -1]}]), b""), "non-negative")
    _rejects(_frames(dict(H, tensors=["float32"]), b""), "spec must be an object")


def test_reject_frame_count_and_byte_size():
    _rejects(GOOD[:1], "announces 1 tensor frame.*got 0")
    _rejects([*GOOD, b"extra"], "announces 1 tensor frame.*got 2")
    _rejects([GOOD[0], GOOD[1][:-4]], "20 bytes, expected 24")


def _expect():
    e = Expectations()
    e.allow(Kind.ACT, "l1->l2", "l1", [TensorSpec(torch.float32, (None, 256))])
    e.allow(Kind.TARGET, "l2->l3", "l3")  # any tensors
    e.allow(Kind.CONTROL, "", "sup")
    return e


def test_expectations_accept():
    e = _expect()
    decode(encode(_act(torch.zeros(5, 256))), e)
    decode(encode(_act(torch.zeros(0, 256))), e)
    decode(encode(Message(Kind.TARGET, "l3", "l2->l3", 4, [torch.zeros(1), torch.zeros(2, 2)])), e)
    decode(encode(Message(Kind.CONTROL, "sup", "", -1, meta={"verb": "eval"})), e)


def test_expectations_reject():
    e = _expect()
    err = _rejects(encode(_act(torch.zeros(256, 128))), r"shape \[256, 128\], expected \[\*, 256\]", e)
    assert str(err) == (
        "rejected act from 'l1' on edge 'l1->l2' at step 17: tensor 0 has shape [256, 128], expected [*, 256]"
    )
    assert (err.sender, err.edge, err.step) == ("l1", "l1->l2", 17)
    _rejects(encode(_act(torch.zeros(2, 256, dtype=torch.float64))), "dtype float64, expected float32", e)
    _rejects(encode(_act(torch.zeros(2, 256), torch.zeros(2))), "got 2 tensors, expected 1", e)
    _rejects(encode(_act(torch.zeros(256))), r"shape \[256\], expected \[\*, 256\]", e)
    _rejects(encode(_act(torch.zeros(2, 256), sender="l9")), "unexpected sender 'l9'", e, sender="'l9'")
    _rejects(encode(_act(torch.zeros(2, 256), edge="l1->l3")), "unexpected act on edge", e, edge="'l1->l3'")
    _rejects(encode(Message(Kind.LABEL, "l1", "l1->l2", 17)), "unexpected label on edge 'l1->l2'", e)
    control = encode(Message(Kind.CONTROL, "l1", "", 3))
    _rejects(control, "unexpected sender 'l1' for control", e, edge="''", step="3")


def test_decoded_tensors_are_zero_copy_views_of_frames():
    buf = bytearray(encode(_act(torch.arange(4.0)))[1])
    frames = [GOOD[0].replace(b"[2,3]", b"[4]"), buf]
    t = decode(frames).tensors[0]
    buf[0:4] = torch.tensor([9.0]).numpy().tobytes()
    assert t[0].item() == 9.0  # shares memory with the frame, no copy


def test_decoded_tensor_keeps_zmq_frame_alive():
    import gc
    import weakref

    import zmq

    frames = [zmq.Frame(f) for f in encode(_act(torch.arange(3.0)))]
    ref = weakref.ref(frames[1])
    t = decode(frames).tensors[0]
    del frames
    gc.collect()
    assert ref() is not None and torch.equal(t, torch.arange(3.0))
    del t
    gc.collect()
    assert ref() is None  # released with the tensor


def _warm(frames):
    """Decode a good message once, so that its header prefix is a known signature."""
    decode(frames)
    assert wire._known_signature(bytes(frames[0])) is not None


def test_known_signature_decodes_like_the_full_parse():
    _warm(GOOD)
    for step, meta in ((0, {}), (18, {}), (-1, {}), (123456789, {"phase": "eval", "n": [1, 2]})):
        msg = Message(Kind.ACT, "l1", "l1->l2", step, [torch.full((2, 3), float(step))], meta)
        out = decode(encode(msg))
        assert (out.kind, out.sender, out.edge, out.step, out.meta) == (Kind.ACT, "l1", "l1->l2", step, meta)
        assert torch.equal(out.tensors[0], msg.tensors[0])


@pytest.mark.parametrize(
    "tail, match",
    [
        (b'05,"meta":{}}', "not valid JSON"),                      # JSON has no leading zeros
        (b'1.5,"meta":{}}', "'step' is float"),
        (b'true,"meta":{}}', "'step' is bool"),
        (b'-5,"meta":{}}', "below -1"),
        (b'17,"meta":[]}', "'meta' is list"),
        (b'17,"meta":{}', "not valid JSON"),
        (b'17,"meta":{},"kind":"gossip"}', "unknown kind 'gossip'"),  # a later key overrides the prefix
    ],
)
def test_known_signature_still_rejects_a_bad_tail(tail, match):
    _warm(GOOD)
    prefix = GOOD[0][: GOOD[0].index(b',"step":') + len(b',"step":')]
    with pytest.raises(WireError, match=match):
        decode([prefix + tail, GOOD[1]])


def test_known_signature_still_checks_frames_and_expectations():
    e = _expect()
    good = encode(_act(torch.zeros(2, 256)))
    _warm(good)
    decode(good, e)
    _rejects([good[0], good[1][:-4]], "2044 bytes, expected 2048", e)
    _rejects(good[:1], "announces 1 tensor frame.*got 0", e)
    e.allow(Kind.ACT, "l1->l2", "l1", [TensorSpec(torch.float32, (None, 128))])
    _rejects(good, r"shape \[2, 256\], expected \[\*, 128\]", e)


def test_a_header_announcing_a_huge_tensor_is_rejected_before_its_frame_is_read():
    e = Expectations(max_tensor_bytes=1 << 20)
    e.allow(Kind.ACT, "l1->l2", "l1", [TensorSpec(torch.float32, (None, 256))])
    header = {"v": 1, "kind": "act", "sender": "l1", "edge": "l1->l2", "step": 0, "meta": {},
              "tensors": [{"dtype": "float32", "shape": [1 << 20, 256]}]}  # 1 GiB, one byte sent
    with pytest.raises(WireError, match="announces 1073741824 bytes, more than the 1048576"):
        decode(_frames(header, b"x"), e)
    decode(encode(_act(torch.zeros(4, 256))), e)  # what fits passes


def test_largest_tensor_bytes_bounds_free_axes_by_the_batch():
    e = Expectations()
    e.allow(Kind.CONTROL, "", "supervisor")
    e.allow(Kind.ACT, "l1->l2", "l1", [TensorSpec(torch.float32, (None, 256))])
    e.allow(Kind.LABEL, "env->l2", "env", [TensorSpec(torch.int64, (None,))])
    assert e.largest_tensor_bytes(64) == 64 * 256 * 4
    e.allow(Kind.ACT, "l0->l2", "l0")  # any tensors: no bound
    assert e.largest_tensor_bytes(64) is None
