"""The one typed config layer: every recipe table is a pydantic model built on ``Strict``.

Why pydantic: one place checks types, ranges and allowed values for every recipe kind, and its errors
carry the location of the bad key, which ``describe_error`` turns into the dotted key a user wrote
(``defaults.edge.backward: expected one of 'backprop', 'dni', 'cdni', 'none', got 'dnii'``).
Models live next to the code that consumes them (agents' tables in ``agents``, recipe-level tables in
``runs``); they all subclass ``Strict`` so unknown keys are rejected everywhere.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["Strict", "ValidationError", "describe_error"]


class Strict(BaseModel):
    """A recipe table: unknown keys are errors, ints are not silently taken for bools (and back)."""

    model_config = ConfigDict(extra="forbid", strict=False, validate_assignment=True, frozen=False)


def _dotted(loc: tuple[Any, ...], prefix: str) -> str:
    parts = [prefix] if prefix else []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
    return ".".join(parts)


def describe_error(err: ValidationError, prefix: str = "") -> str:
    """The first problem of a pydantic error as ``dotted.key: what is wrong`` (allowed values included)."""
    first = err.errors(include_url=False)[0]
    # tagged unions and function validators add their own names to the location; keep the user's keys
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    key = _dotted(loc, prefix)
    kind, msg = first["type"], first["msg"]
    if kind == "extra_forbidden":
        return f"{key}: unknown key"
    if kind == "literal_error":
        expected = first.get("ctx", {}).get("expected", "")
        return f"{key}: expected one of {expected}, got {first.get('input')!r}"
    if kind == "missing":
        return f"{key}: missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if "input" in first and kind != "value_error":
        return f"{key}: {msg}, got {first['input']!r}"
    return f"{key}: {msg}"
