"""Recipes: TOML files that name the environment, the agents, the edges and their modes, and the budget.

``read_recipe`` reads one (a path, or the name of a recipe shipped in ``runs/``), ``apply_overrides`` applies
``--set dotted.key=value``; ``runs.config`` checks every key against the recipe kind's model, so that a bad
recipe is rejected, naming the key, before any process starts.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from agents import ConfigError

SHIPPED = Path(__file__).resolve().parent  # the recipes that come with dnilab: runs/<name>.toml


class RecipeError(ConfigError):
    """A recipe key or value is wrong; the message names the key."""


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


def find_recipe(name: str | Path) -> Path:
    """A recipe file: ``name`` itself if it exists, else the shipped recipe ``runs/<name>.toml``."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = SHIPPED / f"{path.name}.toml"
    if path.suffix == "" and path.parent == Path(".") and shipped.is_file():
        return shipped
    raise RecipeError(f"recipe {str(name)!r}: no such file, nor a shipped recipe (dnilab recipes lists them)")


def read_recipe(path: str | Path) -> dict[str, Any]:
    path = find_recipe(path)
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise RecipeError(f"recipe {str(path)!r}: not valid TOML: {err}") from None
