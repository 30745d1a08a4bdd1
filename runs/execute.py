"""Run one recipe: check it, make the run folder, start the supervisor with a progress display, summarise."""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zmq

from agents import InprocLauncher, LocalLauncher, Supervisor

from .plots import learning_curves
from .progress import RunProgress
from .recipe import RecipeError, apply_overrides, check_common, read_recipe
from .records import RunRecords, new_run_dir
from .systems import build_graph, node_specs


def prepare(recipe_path: str | Path, overrides: list[str] | None = None,
            launcher: str | None = None) -> tuple[dict[str, Any], Any]:
    """Read, override and check a recipe completely; nothing is started. Returns (recipe, plan)."""
    recipe = apply_overrides(read_recipe(recipe_path), list(overrides or []))
    if launcher:
        recipe.setdefault("run", {})["launcher"] = launcher
    return plan_recipe(recipe, default_name=Path(recipe_path).stem)


def plan_recipe(recipe: dict[str, Any], default_name: str = "") -> tuple[dict[str, Any], Any]:
    """Check a recipe that is already a dict; returns (recipe with defaults, plan), the plan being what
    ``node_specs_for`` needs for the recipe's ``run.kind``."""
    if isinstance(recipe.get("run"), dict) and recipe["run"].get("kind") == "rl":  # typed from birth: its own check
        from .rl_system import plan_rl

        return plan_rl(recipe, default_name)
    recipe = check_common(recipe)
    if recipe["run"]["launcher"] == "ray":  # an optional extra: say how to install it before anything starts
        from agents.ray_launcher import RayUnavailable, require_ray

        try:
            require_ray()
        except RayUnavailable as err:
            raise RecipeError(f"run.launcher: {err}") from None
    if not recipe["run"]["name"]:
        recipe["run"]["name"] = default_name
    kind = recipe["run"]["kind"]
    if kind == "feedforward":
        return recipe, build_graph(recipe)
    if kind == "recurrent":
        from .recurrent_system import check_recurrent

        return recipe, check_recurrent(recipe)
    if kind == "multiscale":
        from .multiscale_system import check_multiscale

        return recipe, check_multiscale(recipe)
    raise RecipeError(f"run.kind: {kind!r} is not supported")


def node_specs_for(recipe: dict[str, Any], plan: Any, run_dir: Path) -> list:
    """The processes of a planned recipe (env node and agents), whatever its ``run.kind``."""
    kind = recipe["run"]["kind"]
    if kind == "feedforward":
        return node_specs(recipe, plan, str(run_dir))
    if kind == "rl":
        from .rl_system import rl_specs

        return rl_specs(recipe, plan, str(run_dir))
    if kind == "recurrent":
        from .recurrent_system import recurrent_specs

        return recurrent_specs(recipe, plan, str(run_dir))
    from .multiscale_system import multiscale_specs

    return multiscale_specs(recipe, plan, str(run_dir))


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler): the run stops as on Ctrl-C, keeping its records and checkpoints."""


@contextmanager
def sigterm_stops_the_run() -> Iterator[None]:
    """Turn SIGTERM into ``Terminated`` while a run is supervised (main thread only; an inherited SIG_IGN is kept).
    A second SIGTERM during the clean stop is ignored, so the stop itself is not cut short (SIGKILL still works)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated("terminated (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def make_launcher(recipe: dict[str, Any], ctx: zmq.Context):  # noqa: ANN201 - a Launcher
    run = recipe["run"]
    if run["launcher"] == "inproc":
        return InprocLauncher(ctx)
    if run["launcher"] == "ray":
        from agents.ray_launcher import RayLauncher  # optional extra

        return RayLauncher(address=run["address"] or None, keys=run.get("keys") or None)
    return LocalLauncher(transport=run["transport"], keys=run.get("keys") or None)


def execute(recipe: dict[str, Any], plan: Any, out: str | Path | None = None, recipe_path: str | None = None,
            progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Run a prepared recipe to the end; returns the run folder and its summary."""
    run_dir = new_run_dir(recipe["run"]["name"], out)
    records = RunRecords(run_dir, recipe, recipe_path)
    specs = node_specs_for(recipe, plan, run_dir)
    ctx = zmq.Context()
    launcher = make_launcher(recipe, ctx)
    extra = getattr(launcher, "supervisor_kwargs", None)  # e.g. CURVE keys over tcp
    supervisor_kwargs = extra([s.name for s in specs]) if extra is not None else {}
    supervisor = Supervisor(specs, launcher, records, uuid.uuid4().hex[:8], ctx=ctx, **supervisor_kwargs)
    with RunProgress(recipe["run"]["steps"], recipe["run"]["name"], enabled=progress) as bar, sigterm_stops_the_run():
        records.listeners.append(bar)
        outcome = supervisor.run()
    summary = records.finish(outcome.status, outcome.error, {"steps": recipe["run"]["steps"]})
    try:
        learning_curves(run_dir)
        if recipe["run"]["kind"] == "rl":
            from .rl_system import return_curves

            return_curves(run_dir)
    except Exception as err:  # noqa: BLE001 - a plot must never lose a run
        print(f"warning: could not draw learning curves: {err}")
    ctx.destroy(linger=0)
    return run_dir, summary
