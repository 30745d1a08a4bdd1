"""The recipe-level tables (``[run]``, ``[env]``, ``[model]``) and one model per recipe kind, built on
``agents.Strict``; the agents' own tables (agents, edges, levels, synthesizers, the recurrent agent) are
``agents``' models.

``runs.execute.SYSTEMS`` maps ``run.kind`` to its recipe model (and its planner): a new kind is one more entry
there. ``validate_recipe`` checks a whole recipe against its kind's model and returns the model, its defaults
filled; ``resolved`` is that model as the dict a run folder's ``recipe.toml`` holds.
Tables that other tables' defaults merge into (``[[agents]]``, ``[[edges]]``, ``[overrides]``) stay as
written here and are checked once merged, by the planner (``runs.systems``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field, model_validator

from agents import (
    AgentOptions,
    ConfigError,
    EdgeOptions,
    InvalidKey,
    LevelConfig,
    RecurrentRecipe,
    Strict,
    TickingEdgeOptions,
    check_config,
)

from .recipe import RecipeError

__all__ = ["EnvConfig", "FeedForwardRecipe", "ModelConfig", "MultiscaleRecipe", "RecurrentRunConfig",
           "RecurrentRunRecipe", "RunConfig", "check", "resolved", "validate_recipe"]

M = TypeVar("M", bound=BaseModel)
PositiveInt = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]


class RunConfig(Strict):
    """``[run]``: the budget and where the agents run."""

    name: str = ""  # default: the recipe file's name
    kind: str = "feedforward"  # one of runs.execute.SYSTEMS
    description: str | None = None
    steps: PositiveInt = 1000  # environment steps (recurrent: training windows)
    seconds: Annotated[float, Field(ge=0)] = 0.0  # wall-clock limit; 0 = none
    seed: Count = 0
    eval_every: Count = 0  # env steps between evaluations of the composed system (0 = at the end only)
    launcher: Literal["local", "inproc", "ray"] = "local"
    transport: Literal["ipc", "tcp"] = "ipc"
    device: str = "auto"
    window: PositiveInt = 4  # steps an agent may have in flight to the next one
    capacity: Count = 0  # steps each store holds; 0 = sized from the chain (agents.store_capacity)
    metrics_every: PositiveInt = 50
    address: str = ""  # a Ray cluster's address (launcher "ray"; default: start a local one)
    keys: str | None = None  # a CURVE key directory for tcp / ray runs (default: fresh keys per run)
    pace: Literal["fastest", "all"] = "fastest"  # "all": the environment waits for every reader of its input
    checkpoint_every: Count = 0  # feed-forward: each agent also checkpoints every this many steps (docs/FAULTS.md)
    restarts: Count = 0  # feed-forward: restarts of a dead agent from its checkpoint before the run fails


class EnvConfig(Strict):
    """``[env]``: a registered environment id or ``"package.module:Class"``, its kwargs, and the evaluation
    stream's kwargs (laid over ``kwargs``)."""

    id: Annotated[str, Field(min_length=1)]
    kwargs: dict[str, Any] = {}
    eval: dict[str, Any] = Field(default_factory=lambda: {"split": "test"})


class ModelConfig(Strict):
    """``[model]``: a feed-forward chain in one table, expanded into one agent per layer (``runs.systems``)."""

    kind: Literal["fcn", "cnn", "quadrants"] = "fcn"
    depth: PositiveInt | None = None  # fcn: 4; cnn: len(channels) + 1; quadrants: 3 (sensor, fusion, head)
    hidden: PositiveInt | None = None  # fcn: units per hidden layer (256); quadrants: the fusion agent's (256)
    channels: list[PositiveInt] | None = None  # cnn: output channels of each conv layer ([32, 64])
    sensor: PositiveInt | None = None  # quadrants: units of each sensor agent (64)
    classes: PositiveInt = 10

    @model_validator(mode="after")
    def _fill(self) -> ModelConfig:
        if self.sensor is not None and self.kind != "quadrants":
            raise InvalidKey("sensor", f"only with kind = \"quadrants\" (got kind = {self.kind!r})")
        if self.kind == "quadrants":
            self.hidden = 256 if self.hidden is None else self.hidden
            self.sensor = 64 if self.sensor is None else self.sensor
            if self.depth not in (None, 3):
                raise InvalidKey("depth", f"a quadrants model is sensor, fusion, head: depth 3, got {self.depth}")
            self.depth = 3
        elif self.kind == "fcn":
            self.depth = 4 if self.depth is None else self.depth
            self.hidden = 256 if self.hidden is None else self.hidden
            if self.depth < 2:
                raise InvalidKey("depth", f"an FCN needs at least 2 layers, got {self.depth}")
        else:
            self.channels = [32, 64] if self.channels is None else self.channels
            if self.depth is not None and self.depth != len(self.channels) + 1:
                raise InvalidKey("depth", f"a cnn's depth is len(channels) + 1 = {len(self.channels) + 1}")
            self.depth = len(self.channels) + 1
        return self


class FeedForwardDefaults(Strict):
    agent: AgentOptions = AgentOptions()
    edge: EdgeOptions = EdgeOptions()  # every agent-to-agent edge (not the environment's)


class FeedForwardRecipe(Strict):
    """``run.kind = "feedforward"``: ``[model]``, or ``[[agents]]`` and ``[[edges]]`` (each table checked as
    ``agents.AgentConfig`` / ``agents.EdgeConfig`` once ``[defaults]`` and ``[overrides.<agent>]`` are merged in)."""

    run: RunConfig = RunConfig()
    env: EnvConfig
    model: ModelConfig | None = None
    defaults: FeedForwardDefaults = FeedForwardDefaults()
    agents: list[dict[str, Any]] | None = None
    edges: list[dict[str, Any]] | None = None
    overrides: dict[str, dict[str, Any]] = {}
    paper: dict[str, Any] | None = None  # the paper's numbers for this setting (reports)

    @model_validator(mode="after")
    def _one_graph(self) -> FeedForwardRecipe:
        if self.model is not None and (self.agents is not None or self.edges is not None):
            raise InvalidKey("model", "give either [model] or explicit [[agents]]/[[edges]], not both")
        if self.model is None and not self.agents:
            raise InvalidKey("agents", "no agents (add [model] or [[agents]])")
        return self


class MultiscaleDefaults(Strict):
    edge: TickingEdgeOptions = TickingEdgeOptions()  # the edge into every level above the first


class MultiscaleRecipe(Strict):
    """``run.kind = "multiscale"``: ``[levels.<name>]`` tables from fast to slow (``runs.multiscale_system``)."""

    run: RunConfig = RunConfig()
    env: EnvConfig
    levels: dict[str, LevelConfig]
    defaults: MultiscaleDefaults = MultiscaleDefaults()
    paper: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _two_levels(self) -> MultiscaleRecipe:
        if len(self.levels) < 2:
            raise InvalidKey("levels", "give at least two [levels.<name>] tables, fastest first")
        return self


class RecurrentRunConfig(RunConfig):
    """``[run]`` of a recurrent recipe: also the agent's reporting and evaluation keys (``agents.RecurrentRun``)."""

    log_every: PositiveInt = 50
    eval_chars: Count = 0


class RecurrentRunRecipe(RecurrentRecipe):
    """``run.kind = "recurrent"``: the agent's recipe (``agents.RecurrentRecipe``) with the whole ``[run]`` table."""

    run: RecurrentRunConfig = RecurrentRunConfig(kind="recurrent")
    paper: dict[str, Any] | None = None


def check(model: type[M], data: Any, where: str = "") -> M:
    """``agents.check_config`` for a recipe: a ``RecipeError`` naming ``where.key``."""
    try:
        return check_config(model, data, where)
    except ConfigError as err:
        raise RecipeError(str(err)) from None


def validate_recipe(recipe: dict[str, Any], models: Mapping[str, type[Strict]]) -> Strict:
    """The recipe checked against the model of its ``run.kind`` (``models``: kind -> model), defaults filled;
    ``RecipeError`` naming the key."""
    run = recipe.get("run", {})
    kind = run.get("kind", "feedforward") if isinstance(run, dict) else "feedforward"
    if not isinstance(kind, str) or kind not in models:
        raise RecipeError(f"run.kind: must be one of {', '.join(map(repr, models))}, got {kind!r}")
    return check(models[kind], recipe)


def resolved(model: BaseModel) -> dict[str, Any]:
    """A checked recipe as the dict a run folder's ``recipe.toml`` holds: every default filled, nothing None
    (TOML has no null; a None key means "derived", e.g. an agent's device from the run's)."""
    return model.model_dump(by_alias=True, exclude_none=True)
