"""The one typed config layer: every recipe table is a pydantic model built on ``Strict``.

Why pydantic: one place checks types, ranges and allowed values for every recipe kind, and its errors
carry the location of the bad key, which ``describe_error`` turns into the dotted key a user wrote
(``defaults.edge.backward: must be 'backprop', 'dni', 'cdni' or 'none', got 'dnii'``).
Models live next to the code that consumes them (agents' tables here and in ``agents.recurrent_config``,
recipe-level tables in ``runs.config``); they all subclass ``Strict`` so unknown keys are rejected everywhere.

A check that involves two keys raises ``InvalidKey(key, why)`` from a model validator, so the message still
names the key at fault (``agent.aux: needs sg = 'dni'``), not only the table.

The feed-forward tables: ``AgentOptions`` (what ``[defaults.agent]`` may set) and ``AgentConfig`` (a whole
agent), ``EdgeOptions`` / ``EdgeConfig`` likewise, ``SynthesizerConfig`` (M on an edge) and
``InputSynthesizerConfig`` (I). The multi-timescale ones: ``LevelConfig`` and ``TickingSynthesizerConfig``.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from interfaces import LEARNERS, SG_TARGETS

from .graph import BACKWARD_MODES, FORWARD_MODES
from .merge import MERGES

__all__ = [
    "AgentConfig",
    "AgentOptions",
    "ConfigError",
    "EdgeConfig",
    "EdgeOptions",
    "InputSynthesizerConfig",
    "InvalidKey",
    "LevelConfig",
    "Strict",
    "SynthesizerConfig",
    "TickingEdgeOptions",
    "TickingSynthesizerConfig",
    "ValidationError",
    "check_config",
    "describe_error",
]

M = TypeVar("M", bound=BaseModel)

PositiveInt = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]
NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]


class Strict(BaseModel):
    """A recipe table: unknown keys are errors; types are not coerced (an int is no bool, "3" is no int), except
    that an int is a valid float."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class ConfigError(ValueError):
    """A config value is wrong; the message starts with the dotted key (``runs.RecipeError`` for recipes)."""


class InvalidKey(ValueError):
    """Raised by a model validator: ``key`` (dotted, relative to the model) is wrong because of ``why``."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key, self.why = key, why


# ------------------------------------------------------------------------------------------- errors

_TAGS = {"int", "str", "float", "bool", "dict", "list", "none", "is-instance"}


def _is_tag(part: Any) -> bool:
    """Names pydantic adds to an error's location for union members and validators, not keys a user wrote."""
    return isinstance(part, str) and ("[" in part or part in _TAGS or part.startswith("function-"))


def _dotted(loc: tuple[Any, ...], prefix: str) -> str:
    parts = [prefix] if prefix else []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
    return ".".join(parts)


def _model_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model an annotation holds (``X``, ``X | None``, ``list[X]``, ``dict[str, X]``) and whether a dict key
    comes before it in an error's location."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is dict and len(args) == 2:
        return _model_in(args[1])[0], True
    if origin in (Union, types.UnionType, list, Annotated):
        for arg in args:
            found = _model_in(arg)
            if found[0] is not None:
                return found
    return None, False


def _keys(model: type[BaseModel]) -> list[str]:
    return sorted(info.alias or name for name, info in model.model_fields.items())


def known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The keys the table at ``loc[:-1]`` may hold, or None where that is not a model."""
    current: type[BaseModel] | None = model
    dict_key = False
    for part in loc[:-1]:
        if isinstance(part, int) or dict_key:
            dict_key = False
            continue
        fields = {info.alias or name: info for name, info in current.model_fields.items()}
        if part not in fields:
            return None
        current, dict_key = _model_in(fields[part].annotation)
        if current is None:
            return None
    return _keys(current) if not dict_key else None


_KINDS = {
    "int_type": "an int", "float_type": "a number", "bool_type": "true or false", "string_type": "a string",
    "list_type": "a list", "dict_type": "a table", "model_type": "a table", "model_attributes_type": "a table",
    "finite_number": "a finite number",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def describe_error(err: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """The first problem of a pydantic error as ``dotted.key: what is wrong, got <value>``; an unknown key lists
    the known ones when ``model`` (the validated model) is given, a wrong choice lists the allowed values."""
    first = err.errors(include_url=False)[0]
    loc = tuple(p for p in first["loc"] if not _is_tag(p))
    kind, msg, ctx = first["type"], first["msg"], first.get("ctx", {})
    got = f", got {first['input']!r}" if "input" in first else ""
    cause = ctx.get("error")
    if isinstance(cause, InvalidKey):
        return f"{_dotted(loc + tuple(cause.key.split('.')), prefix)}: {cause.why}"
    key = _dotted(loc, prefix)
    if kind == "extra_forbidden":
        known = known_keys(model, first["loc"]) if model is not None else None
        return f"{key}: unknown key" + (f" (known: {', '.join(known)})" if known else "")
    if kind == "missing":
        return f"{key}: missing"
    if kind == "literal_error":
        return f"{key}: must be {ctx.get('expected', '')}{got}"
    if kind in _KINDS:
        return f"{key}: must be {_KINDS[kind]}{got}"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), "?")
        return f"{key}: must be {_BOUNDS[kind]} {f'{bound:g}' if isinstance(bound, float) else bound}{got}"
    if msg.startswith("Value error, "):
        return f"{key}: {msg[len('Value error, '):]}"
    return f"{key}: {msg}{got}"


def check_config(model: type[M], data: Any, where: str = "") -> M:
    """``model`` validated from ``data`` (a recipe table); ``ConfigError`` naming ``where.key`` if it is wrong."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_error(err, where, model)) from None


# ---------------------------------------------------------------------------------- feed-forward tables


class SynthesizerConfig(Strict):
    """M on a ``dni`` / ``cdni`` edge (``synthesizer = {...}``)."""

    hidden: list[PositiveInt] = []  # hidden layer widths; [] = linear (zero-initialised output either way)
    lr: NonNegative = 1e-4  # M's own Adam
    capacity: PositiveInt | None = None  # steps of M's inputs kept for their targets (default: the agent's stores)
    scale: NonNegative = 1.0  # multiplies M's output where it is applied
    # what M learns from: the receiver's own M carried back ("bootstrap", the paper) or the true gradient that a
    # backward wave brings back later ("delayed"); None = the edge's default (agents.EdgeSpec.sg_target)
    target: Literal[SG_TARGETS] | None = None
    updates: PositiveInt = 1  # M's optimizer steps on each (h, target) pair


class InputSynthesizerConfig(Strict):
    """I on a ``forward = "synthetic"`` edge (``input_synthesizer = {...}``)."""

    hidden: list[PositiveInt] = []
    lr: NonNegative = 1e-4
    capacity: PositiveInt | None = None


class AgentOptions(Strict):
    """What ``[defaults.agent]`` and ``[overrides.<agent>]`` may set for every agent."""

    optimizer: dict[str, Any] = Field(default_factory=lambda: {"name": "adam", "lr": 1e-3})  # agents.build_optimizer
    update_prob: Annotated[float, Field(gt=0, le=1)] = 1.0
    slowdown: Annotated[float, Field(ge=1)] = 1.0  # a factor: each step takes this many times its compute
    stage_ms: NonNegative = 0.0  # simulated device time per forward and per backward
    device: str | None = None  # default: the run's device
    factory: str = "agents:FeedForwardAgent"
    merge: Literal[MERGES] = "concat"  # fan-in: how the inputs of several in-edges combine (edge order)


class AgentConfig(AgentOptions):
    """One ``[[agents]]`` table, defaults and overrides merged in."""

    name: str
    module: dict[str, Any]  # agents.build_module checks it


class EdgeOptions(Strict):
    """What ``[defaults.edge]`` may set for every agent-to-agent edge."""

    backward: Literal[BACKWARD_MODES] = "backprop"
    forward: Literal[FORWARD_MODES] = "real"
    synthesizer: SynthesizerConfig = SynthesizerConfig()
    input_synthesizer: InputSynthesizerConfig = InputSynthesizerConfig()
    prefer_real: bool = True  # synthetic forward: use a real h that already arrived (False: always I(x))
    late_real: bool = False   # synthetic forward: a real h that arrives after its step was done on I(x) is trained too


class EdgeConfig(EdgeOptions):
    """One ``[[edges]]`` table, defaults merged in."""

    sender: str = Field(alias="from")
    receiver: str = Field(alias="to")
    part: Count | None = None  # from the environment only: carry obs[:, part] (one view of a multi-view input)


# ------------------------------------------------------------------------------- multi-timescale tables


class TickingSynthesizerConfig(SynthesizerConfig):
    """M on an edge between two ticking levels: ``context`` conditions M on the sender's LSTM state h as well as
    on its output ("state"), on h and the encoded inputs of the window that produced the output ("window"), or
    on h and that window's raw inputs ("inputs"; with ``encoder = F`` through one encoder of width F shared by
    the inputs, with ``pool = P`` each input image average-pooled P x P first); ``learner = "thread"`` runs
    M's learning step on a thread of its own beside the sender's work. ``target`` (from ``SynthesizerConfig``)
    matters on the edge into a middle level: "delayed" (the default of ``dni``) has that level send the true
    gradient of its re-run window once the target for its own output is back (``agents.window_wave``);
    ``probe = true`` has it measure the bootstrapped target against that true one (``wave/bootstrap_cosine``)."""

    context: Literal["none", "state", "window", "inputs"] = "none"
    encoder: PositiveInt | None = None
    pool: PositiveInt = 1
    learner: Literal[LEARNERS] = "inline"
    probe: bool = False

    @field_validator("encoder", "pool")
    @classmethod
    def _inputs_only(cls, value: int | None, info: ValidationInfo) -> int | None:
        context = info.data.get("context", "none")
        given = value is not None if info.field_name == "encoder" else value != 1
        if given and context != "inputs":
            raise ValueError(f"only with context = \"inputs\" (got {info.field_name} = {value!r}, "
                             f"context = {context!r})")
        return value


class TickingEdgeOptions(Strict):
    """``[defaults.edge]`` of a multi-timescale recipe: the mode of the edge into each level above the first."""

    backward: Literal[BACKWARD_MODES] = "backprop"
    synthesizer: TickingSynthesizerConfig = TickingSynthesizerConfig()


class LevelConfig(Strict):
    """One ``[levels.<name>]`` table. Keys left out take the recipe's ``[defaults.edge]`` (backward,
    synthesizer) or a value that depends on the level's place in the chain (period, out, window, flush)."""

    period: PositiveInt | None = None  # env steps per tick; default at the top: the env's k
    hidden: int | str = 64  # LSTM units, or "auto": the per-tick compute of the level below x the period ratio
    out: PositiveInt | None = None  # width of the act sent up (not at the top)
    encoder: Count | None = None  # first level only: an encoder of this width before the LSTM
    window: PositiveInt | None = None  # top only: its TBPTT window in its own ticks
    flush: bool | None = None  # zero the state after each window (default: below the top)
    clip: NonNegative = 0.0
    optimizer: dict[str, Any] = Field(default_factory=lambda: {"name": "adam", "lr": 1e-3})
    slowdown: Annotated[float, Field(ge=1)] = 1.0
    stage_ms: NonNegative = 0.0
    device: str | None = None
    backward: Literal[BACKWARD_MODES] | None = None  # the edge into this level (not on the first)
    synthesizer: TickingSynthesizerConfig | None = None

    @field_validator("hidden")
    @classmethod
    def _hidden_or_auto(cls, value: int | str) -> int | str:
        if isinstance(value, str) and value != "auto":
            raise ValueError(f"must be an int or \"auto\", got {value!r}")
        if isinstance(value, int) and value < 1:
            raise ValueError(f"must be >= 1, got {value}")
        return value
