"""Recipes: TOML files that name the environment, the agents, the edges and their modes, and the budget.

``load_recipe`` reads a recipe, applies ``--set dotted.key=value`` overrides, fills defaults and checks
every key, so that a bad recipe is rejected, naming the key, before any process starts.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

RUN_KINDS = ("feedforward", "recurrent", "multiscale")
LAUNCHERS = ("local", "inproc", "ray")
TRANSPORTS = ("ipc", "tcp")


class RecipeError(ValueError):
    """A recipe key or value is wrong; the message names the key."""


RUN_DEFAULTS: dict[str, Any] = {
    "name": "", "kind": "feedforward", "steps": 1000, "seconds": 0.0, "seed": 0, "eval_every": 0,
    "launcher": "local", "transport": "ipc", "device": "auto", "window": 4, "capacity": 0,
    "metrics_every": 50, "address": "", "pace": "fastest", "checkpoint_every": 0, "restarts": 0,
}

# section -> key -> expected type(s); "any" tables are checked by the code that consumes them
SCHEMA: dict[str, dict[str, Any]] = {
    "run": {"name": str, "kind": str, "steps": int, "seconds": (int, float), "seed": int,
            "eval_every": int, "launcher": str, "transport": str, "device": str, "window": int,
            "capacity": int, "metrics_every": int, "address": str, "description": str,
            "log_every": int, "eval_chars": int,  # these two: recurrent recipes only
            "keys": str, "pace": str,  # a CURVE key directory for tcp / ray runs (default: fresh keys per run)
            "checkpoint_every": int, "restarts": int},  # fault tolerance: docs/FAULTS.md
    "env": {"id": str, "kwargs": dict, "eval": dict},
    "model": {"kind": str, "depth": int, "hidden": int, "channels": list, "classes": int},
    "defaults": {"agent": dict, "edge": dict},
    "agents": list,
    "edges": list,
    "overrides": dict,
    "paper": dict,
}
AGENT_KEYS = {"name": str, "module": dict, "optimizer": dict, "update_prob": (int, float),
              "slowdown": (int, float), "stage_ms": (int, float), "device": str, "factory": str}
EDGE_KEYS = {"from": str, "to": str, "backward": str, "forward": str, "synthesizer": dict,
             "input_synthesizer": dict, "prefer_real": bool}
SYNTH_KEYS = {"hidden": list, "lr": (int, float), "capacity": int, "scale": (int, float)}


def _typename(t: Any) -> str:
    return " or ".join(x.__name__ for x in t) if isinstance(t, tuple) else t.__name__


def _check_table(table: dict[str, Any], keys: dict[str, Any], where: str) -> None:
    for key, value in table.items():
        if key not in keys:
            raise RecipeError(f"{where}.{key}: unknown key (known: {', '.join(sorted(keys))})")
        expected = keys[key]
        if expected is int and isinstance(value, bool) or not isinstance(value, expected):
            raise RecipeError(f"{where}.{key}: expected {_typename(expected)}, got {value!r}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"run.steps=200"`` -> (["run", "steps"], 200); values are TOML (bare words become strings)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {text!r}: expected dotted.key=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return [k.strip() for k in key.split(".")], value


def apply_overrides(recipe: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    recipe = copy.deepcopy(recipe)
    for text in overrides:
        path, value = parse_override(text)
        node = recipe
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(f"--set {text!r}: {part!r} is not a table")
        node[path[-1]] = value
    return recipe


def read_recipe(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {str(path)!r}: no such file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise RecipeError(f"recipe {str(path)!r}: not valid TOML: {err}") from None


def check_common(recipe: dict[str, Any]) -> dict[str, Any]:
    """Check the sections every recipe shares; fill ``[run]`` defaults. Returns the completed recipe."""
    for section, value in recipe.items():
        if section in SCHEMA:
            expected = SCHEMA[section]
            if isinstance(expected, dict):
                if not isinstance(value, dict):
                    raise RecipeError(f"{section}: expected a table")
                if section in ("run", "env", "model", "defaults"):
                    _check_table(value, expected, section)
            elif not isinstance(value, expected):
                raise RecipeError(f"{section}: expected {_typename(expected)}")
        elif section not in ("agent", "curriculum", "sweep", "levels"):  # kind-specific sections
            raise RecipeError(f"{section}: unknown section")
    run = {**RUN_DEFAULTS, **recipe.get("run", {})}
    recipe["run"] = run
    if run["kind"] not in RUN_KINDS:
        raise RecipeError(f"run.kind: expected one of {RUN_KINDS}, got {run['kind']!r}")
    if run["launcher"] not in LAUNCHERS:
        raise RecipeError(f"run.launcher: expected one of {LAUNCHERS}, got {run['launcher']!r}")
    if run["transport"] not in TRANSPORTS:
        raise RecipeError(f"run.transport: expected one of {TRANSPORTS}, got {run['transport']!r}")
    if run["pace"] not in ("fastest", "all"):
        raise RecipeError(f"run.pace: expected 'fastest' or 'all', got {run['pace']!r}")
    for key in ("steps", "window", "metrics_every"):
        if run[key] < 1:
            raise RecipeError(f"run.{key}: must be >= 1, got {run[key]}")
    # capacity 0: sized from the chain (agents.store_capacity)
    for key in ("seconds", "eval_every", "capacity", "checkpoint_every", "restarts"):
        if run[key] < 0:
            raise RecipeError(f"run.{key}: must be >= 0, got {run[key]}")
    if "env" not in recipe or "id" not in recipe["env"]:
        raise RecipeError("env.id: missing (a registered gymnasium id or 'package.module:Class')")
    return recipe


def check_agent_table(table: dict[str, Any], where: str) -> None:
    _check_table(table, AGENT_KEYS, where)


def check_edge_table(table: dict[str, Any], where: str) -> None:
    _check_table(table, EDGE_KEYS, where)
    for key in ("synthesizer", "input_synthesizer"):
        if key in table:
            _check_table(table[key], SYNTH_KEYS, f"{where}.{key}")
