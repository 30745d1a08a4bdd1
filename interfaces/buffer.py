"""A bounded step-keyed store: what a synthesizer keeps until the matching target/real h comes back.

Bounded staleness, never unbounded memory: when full, the oldest step is evicted and counted.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class StepBuffer(Generic[V]):
    """Insertion-ordered map step -> value holding at most `capacity` entries."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.dropped = 0  # entries evicted before anyone popped them
        self._items: OrderedDict[int, V] = OrderedDict()

    def put(self, step: int, value: V) -> None:
        """Store value for step (replacing an older value for the same step); evict the oldest if full."""
        if step in self._items:
            del self._items[step]
        elif len(self._items) >= self.capacity:
            self._items.popitem(last=False)
            self.dropped += 1
        self._items[step] = value

    def pop(self, step: int) -> V | None:
        """Remove and return the value for step, or None if it was never stored or already evicted."""
        return self._items.pop(step, None)

    def get(self, step: int) -> V | None:
        """The value for step, left in place; None if it was never stored or already evicted."""
        return self._items.get(step)

    def steps(self) -> list[int]:
        """Stored steps, oldest first."""
        return list(self._items)

    def clear(self) -> None:
        self._items.clear()

    def __contains__(self, step: object) -> bool:
        return step in self._items

    def __len__(self) -> int:
        return len(self._items)
