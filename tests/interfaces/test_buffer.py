from interfaces import StepBuffer


def test_put_pop_and_eviction():
    buf: StepBuffer[str] = StepBuffer(3)
    for s in range(5):
        buf.put(s, f"v{s}")
    assert len(buf) == 3 and buf.steps() == [2, 3, 4] and buf.dropped == 2
    assert buf.pop(0) is None and buf.pop(3) == "v3" and buf.pop(3) is None
    assert 4 in buf and 3 not in buf
    buf.put(4, "again")  # same step replaces, no drop
    assert buf.dropped == 2 and buf.pop(4) == "again"


def test_memory_stays_bounded():
    buf: StepBuffer[bytes] = StepBuffer(16)
    for s in range(1000):
        buf.put(s, bytes(10))
    assert len(buf) == 16 and buf.dropped == 984 and buf.steps() == list(range(984, 1000))
