"""The recurrent agent's recipe tables: ``[agent]`` (``RecurrentConfig``), the ``[run]`` and ``[env]`` keys it
reads, and ``[curriculum]`` (``agents.curriculum``), checked as one ``RecurrentRecipe`` before anything is built."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from .config import Count, InvalidKey, NonNegative, PositiveInt, Strict, check_config
from .curriculum import CurriculumConfig

__all__ = ["KNOWN_ENVS", "RecurrentConfig", "RecurrentEnv", "RecurrentRecipe", "RecurrentRun", "agent_recipe",
           "parse_recipe", "validate_recurrent"]

# Env ids this agent knows: task kind and the env kwargs a recipe may set (batch_size/split are the agent's).
KNOWN_ENVS: dict[str, tuple[str, frozenset[str]]] = {
    "dnilab/Copy-v0": ("copy", frozenset({"length", "bits", "lengths"})),
    "dnilab/RepeatCopy-v0": ("copy", frozenset({"length", "repeats", "bits", "repeat_norm", "lengths"})),
    "dnilab/CharLM-v0": ("lm", frozenset({"corpus", "root", "text", "download"})),
}
Fraction = Annotated[float, Field(ge=0, lt=1)]


class RecurrentConfig(Strict):
    """The ``[agent]`` recipe section."""

    hidden: PositiveInt = 256  # LSTM units (paper: 256 for Copy/Repeat Copy, 1024 for PTB)
    window: PositiveInt = 3  # truncation window T (steps per BPTT segment)
    sg: Literal["dni", "none"] = "dni"  # "dni": synthetic gradient at each boundary; "none": truncated BPTT baseline
    aux: bool = False  # DNI + Aux (needs sg = "dni")
    aux_weight: NonNegative = 1.0
    lr: NonNegative = 1e-3  # Adam, core + readout (+ aux head)
    sg_lr: NonNegative = 1e-3  # Adam, M
    sg_scale: NonNegative = 1.0  # multiplies M's output where it is applied (γ in agents.tbptt)
    sg_average: Fraction = 0.0  # > 0: apply an exponential moving average of M's weights (this decay), not M itself
    sg_fit: Literal["adam", "ridge"] = "adam"  # how M learns: Adam steps (sg_lr), or a closed-form refit every window
    sg_ridge: Annotated[float, Field(gt=0)] = 0.1  # "ridge": the penalty per row (λ n |W|², bias free)
    sg_memory: Fraction = 0.999  # "ridge": each window's rows weigh this much less per later window
    sg_hidden: list[PositiveInt] = []  # M's hidden layers; [] = linear (the paper's)
    sg_state: Literal["hc", "h"] = "hc"  # the boundary state M reads and predicts the gradient of: (h, c) or h
    # A control for what DNI's gain comes from: apply, in M's place, Gaussian noise of M's norm per sequence
    # ("noise") or M's outputs shuffled across the batch ("shuffle"); M learns as usual either way.
    sg_control: Literal["none", "noise", "shuffle"] = "none"
    batch_size: PositiveInt = 64  # sequences (Copy) or parallel streams (char LM)
    clip: NonNegative = 10.0  # global grad-norm clip of the core's update; 0 = off
    eval_batch_size: PositiveInt = 32  # char LM: streams when evaluating valid/test

    @model_validator(mode="after")
    def _consistent(self) -> RecurrentConfig:
        if self.aux and self.sg != "dni":
            raise InvalidKey("aux", "needs sg = 'dni' (Aux predicts synthetic gradients)")
        if self.sg_control != "none" and self.sg != "dni":
            raise InvalidKey("sg_control", "replaces M's applied output: needs sg = 'dni'")
        if self.sg_fit == "ridge" and (self.sg_hidden or self.sg_average > 0):
            raise InvalidKey("sg_fit", "'ridge' fits a linear M (no sg_hidden) and applies it (no sg_average)")
        return self


class RecurrentRun(Strict):
    """The ``[run]`` keys this agent reads."""

    kind: Literal["recurrent"] = "recurrent"
    steps: PositiveInt  # training windows (= core updates); a Copy episode of length L takes ceil(L / T) windows
    seed: Count = 0
    log_every: PositiveInt = 50  # windows between report() calls
    eval_every: Count = 0  # char LM: windows between validation passes (0 = only at the end)
    eval_chars: Count = 0  # char LM: cap on characters per valid/test pass (0 = the whole split)


class RecurrentEnv(Strict):
    """The ``[env]`` table: a sequence environment; ``task`` ("copy" or "lm") is known for dnilab's ids."""

    id: Annotated[str, Field(min_length=1)]
    kwargs: dict[str, Any] = {}
    task: Literal["copy", "lm"] | None = None

    @model_validator(mode="after")
    def _known_task(self) -> RecurrentEnv:
        for key in ("batch_size", "split"):
            if key in self.kwargs:
                raise InvalidKey(f"kwargs.{key}", "set by the agent (use agent.batch_size / the run's eval), remove it")
        known = KNOWN_ENVS.get(self.id)
        if known is not None:
            for key in self.kwargs:
                if key not in known[1]:
                    raise InvalidKey(f"kwargs.{key}", f"unknown key (known: {', '.join(sorted(known[1]))})")
            if self.task is None:
                self.task = known[0]
        if self.task is None:
            raise InvalidKey("task", "must be 'copy' or 'lm' (required for env ids this agent does not know)")
        return self


class RecurrentRecipe(Strict):
    """A checked recurrent recipe: what ``run_recurrent`` reads. A copy task always has a curriculum."""

    run: RecurrentRun
    env: RecurrentEnv
    agent: RecurrentConfig = RecurrentConfig()
    curriculum: CurriculumConfig | None = None

    @model_validator(mode="after")
    def _curriculum_for_copy(self) -> RecurrentRecipe:
        if self.env.task != "copy" and self.curriculum is not None:
            raise InvalidKey("curriculum", "only for copy tasks (Copy / Repeat Copy)")
        if self.env.task == "copy" and self.curriculum is None:
            self.curriculum = CurriculumConfig()
        return self

    @property
    def env_id(self) -> str:
        return self.env.id

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return self.env.kwargs

    @property
    def task(self) -> str:
        return str(self.env.task)


def agent_recipe(recipe: dict[str, Any]) -> dict[str, Any]:
    """The part of a whole recipe this agent reads: its sections, and its keys of ``[run]`` (the runtime's,
    such as the launcher, are not its business)."""
    body = {k: v for k, v in recipe.items() if k in RecurrentRecipe.model_fields}
    return {**body, "run": {k: v for k, v in recipe["run"].items() if k in RecurrentRun.model_fields}}


def parse_recipe(recipe: dict[str, Any]) -> RecurrentRecipe:
    """Check the whole recipe; ``ConfigError`` (a ValueError) naming the bad key. Starts nothing."""
    return check_config(RecurrentRecipe, recipe)


def validate_recurrent(recipe: dict[str, Any]) -> None:
    """Raise ``ConfigError`` (a ValueError) naming the bad key; starts nothing (no env, no data, no torch modules)."""
    parse_recipe(recipe)
