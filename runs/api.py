"""``runs.run``: one recipe run from Python, as ``dnilab run`` does it from a shell.

A thin layer over ``plan_recipe`` and ``execute``: the same checks before anything starts (a bad key raises
``RecipeError`` naming it), the same run folder, the same summary.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .execute import execute, plan_recipe
from .recipe import RecipeError, apply_overrides, read_recipe
from .records import rounded

SHIPPED = Path(__file__).resolve().parent  # the recipes `dnilab recipes` lists


def shipped_recipe(name: str) -> Path | None:
    """The shipped recipe called ``name`` (with or without ``.toml``), or None."""
    path = SHIPPED / (name if name.endswith(".toml") else f"{name}.toml")
    return path if path.is_file() and path.parent == SHIPPED else None


def load_recipe(recipe: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A recipe as a dict, from a dict (copied), a TOML file or a shipped recipe's name; and its file, if any."""
    if isinstance(recipe, Mapping):
        return copy.deepcopy(dict(recipe)), None
    path = Path(recipe)
    if not path.is_file():
        found = shipped_recipe(str(recipe))
        if found is None:
            raise RecipeError(f"recipe {str(recipe)!r}: no such file, nor a shipped recipe of that name "
                              "(`dnilab recipes` lists them)")
        path = found
    return read_recipe(path), str(path)


def set_keys(recipe: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``{"run.steps": 50}``: each dotted key set to its Python value (a ``--set`` without the TOML parsing)."""
    recipe = copy.deepcopy(recipe)
    for key, value in overrides.items():
        parts = [k.strip() for k in str(key).split(".")]
        if not all(parts):
            raise RecipeError(f"override {key!r}: expected a dotted.key")
        node = recipe
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(f"override {key!r}: {part!r} is not a table")
        node[parts[-1]] = copy.deepcopy(value)
    return recipe


def run(recipe: str | Path | Mapping[str, Any], overrides: Sequence[str] | Mapping[str, Any] | None = None,
        out: str | Path | None = None, launcher: str | None = None, quiet: bool = True) -> dict[str, Any]:
    """Check and run one recipe to its end; returns its summary (``summary.json``) with ``run_dir``, the run folder.

    ``recipe``: a TOML file, a shipped recipe's name (``"mnist-fcn4-cdni"``) or a dict of the same tables.
    ``overrides``: ``["run.steps=50", ...]`` (values in TOML, as ``dnilab run --set``) or ``{"run.steps": 50}``.
    ``out``: the run folder (default: a new ``out/<time>-<name>``); ``launcher``: ``local``, ``inproc`` or ``ray``.
    A bad recipe raises ``RecipeError`` before anything starts; a run that fails or is stopped still returns its
    summary, so look at ``summary["status"]`` (``completed``, ``failed`` or ``stopped``). Agents in processes of
    their own are spawned, and import the calling script: call this under ``if __name__ == "__main__":``.
    """
    loaded, recipe_path = load_recipe(recipe)
    if isinstance(overrides, Mapping):
        loaded = set_keys(loaded, overrides)
    elif overrides is not None:
        if isinstance(overrides, str):
            raise RecipeError(f"overrides: expected a list of 'dotted.key=value' or a dict, got {overrides!r}")
        loaded = apply_overrides(loaded, list(overrides))
    if launcher:
        loaded.setdefault("run", {})["launcher"] = launcher
    default_name = Path(recipe_path).stem if recipe_path else "recipe"
    checked, plan = plan_recipe(loaded, default_name=default_name)
    if out is not None and (Path(out) / "meta.json").exists():  # appending would mix two runs' records
        raise FileExistsError(f"out={str(out)!r} already holds a run; choose a new folder or delete that one")
    run_dir, summary = execute(checked, plan, out=out, recipe_path=recipe_path, progress=not quiet)
    return {**rounded(summary), "run_dir": str(run_dir)}  # as summary.json holds it
