"""Sweeps: a grid of recipes x overrides, run cell by cell, resumable.

A cell whose run folder's summary says ``completed`` is skipped, so a sweep killed half-way (or run
across several sessions) picks up where it stopped.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

from .execute import execute, prepare
from .recipe import RecipeError
from .records import COMPLETED, read_summary

SWEEP_KEYS = {"name", "recipes", "grid", "set", "out"}


def _label(key: str, value: Any) -> str:
    """Part of a cell's folder name: the key's last part and the value, as a safe file name ([64, 64] -> 64_64)."""
    return key.split(".")[-1] + _slug(value)


def _slug(value: Any) -> str:
    if isinstance(value, dict):
        return "_".join(f"{key}{_slug(v)}" for key, v in value.items())
    if isinstance(value, list):
        return "_".join(_slug(v) for v in value)
    return re.sub(r"[^A-Za-z0-9._+-]", "", str(value))


def sweep_cells(sweep_file: str | Path) -> tuple[dict[str, Any], list[tuple[str, Path, list[str]]]]:
    """Expand a sweep file into cells: (cell name, recipe path, overrides)."""
    path = Path(sweep_file)
    try:
        spec = tomllib.loads(path.read_text())["sweep"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as err:
        raise RecipeError(f"sweep {str(path)!r}: needs a readable [sweep] table ({err})") from None
    unknown = set(spec) - SWEEP_KEYS
    if unknown:
        raise RecipeError(f"sweep.{sorted(unknown)[0]}: unknown key (known: {', '.join(sorted(SWEEP_KEYS))})")
    recipes = [path.parent / r for r in spec.get("recipes", [])]
    if not recipes:
        raise RecipeError("sweep.recipes: list at least one recipe (paths relative to the sweep file)")
    for r in recipes:
        if not r.is_file():
            raise RecipeError(f"sweep.recipes: no such recipe {str(r)!r}")
    grid: dict[str, list] = spec.get("grid", {})
    fixed = [f"{k}={_toml(v)}" for k, v in spec.get("set", {}).items()]
    cells = []
    for recipe in recipes:
        for values in itertools.product(*grid.values()) if grid else [()]:
            pairs = list(zip(grid.keys(), values))
            name = "-".join([recipe.stem] + [_label(k, v) for k, v in pairs])
            cells.append((name, recipe, fixed + [f"{k}={_toml(v)}" for k, v in pairs]))
    return spec, cells


def _toml(value: Any) -> str:
    """A TOML value for ``--set``: inline tables and arrays too, so ``set`` can fix a whole optimizer table."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {_toml(v)}" for key, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string escapes as JSON does
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def run_sweep(sweep_file: str | Path, out: str | Path | None, overrides: list[str],
              only: list[str]) -> list[tuple[str, str]]:
    """Run every cell not yet completed; returns (cell, status) for each cell."""
    spec, cells = sweep_cells(sweep_file)
    root = Path(out or spec.get("out") or Path("out") / "sweeps" / spec.get("name", Path(sweep_file).stem))
    if only:
        cells = [c for c in cells if any(o in c[0] for o in only)]
    # check every cell first: a bad cell fails the sweep before anything runs
    prepared = []
    for name, recipe, cell_overrides in cells:
        prepared.append((name, recipe, prepare(recipe, cell_overrides + overrides + [f'run.name="{name}"'])))
    results = []
    for i, (name, recipe, (cell_recipe, plan)) in enumerate(prepared, start=1):
        run_dir = root / name
        summary = read_summary(run_dir)
        if summary and summary.get("status") == COMPLETED:
            print(f"[{i}/{len(prepared)}] {name}: completed earlier, skipped", file=sys.stderr)
            results.append((name, COMPLETED))
            continue
        if run_dir.exists():  # an interrupted attempt: start the cell afresh, its partial records would mislead
            shutil.rmtree(run_dir)
        print(f"[{i}/{len(prepared)}] {name}", file=sys.stderr)
        _, summary = execute(cell_recipe, plan, out=run_dir, recipe_path=str(recipe))
        print(f"[{i}/{len(prepared)}] {name}: {summary['status']} {summary.get('eval', {})}", file=sys.stderr)
        results.append((name, summary["status"]))
    return results
