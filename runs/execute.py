"""Run one recipe: check it, make the run folder, start the supervisor with a progress display, summarise."""

from __future__ import annotations

import dataclasses
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import zmq

from agents import ENV, InprocLauncher, LocalLauncher, NodeSpec, Strict, Supervisor, checkpoint_path

from .config import FeedForwardRecipe, MultiscaleRecipe, RecurrentRunRecipe, resolved, validate_recipe
from .marl_system import MarlRecipe, marl_specs, plan_marl
from .multiscale_system import check_multiscale, multiscale_specs
from .plots import learning_curves
from .progress import RunProgress
from .recipe import RecipeError, apply_overrides, read_recipe
from .records import COMPLETED, RunRecords, new_run_dir, read_summary
from .recurrent_system import check_recurrent, recurrent_specs
from .rl_system import RlRecipe, plan_rl, rl_specs
from .systems import build_graph, node_specs


class System(NamedTuple):
    """What a ``run.kind`` is: its recipe's ``model`` (a ``Strict`` model, checked before anything else),
    ``plan(recipe)``, which resolves the checked recipe (``RecipeError`` naming the key; it may resolve ``run``
    keys such as the capacity), and ``specs(recipe, plan, run_dir)``, the processes to start."""

    model: type[Strict]
    plan: Callable[[dict[str, Any]], Any]
    specs: Callable[[dict[str, Any], Any, str], list[NodeSpec]]


SYSTEMS: dict[str, System] = {  # run.kind -> System: a new kind of recipe is one more line here
    "feedforward": System(FeedForwardRecipe, build_graph, node_specs),
    "recurrent": System(RecurrentRunRecipe, check_recurrent, recurrent_specs),
    "multiscale": System(MultiscaleRecipe, check_multiscale, multiscale_specs),
    "rl": System(RlRecipe, lambda recipe: plan_rl(recipe)[1], rl_specs),
    "marl": System(MarlRecipe, plan_marl, marl_specs),
}


def prepare(recipe_path: str | Path, overrides: list[str] | None = None,
            launcher: str | None = None) -> tuple[dict[str, Any], Any]:
    """Read (a path or a shipped recipe's name), override and check a recipe completely; nothing is started.
    Returns (recipe, plan)."""
    recipe = apply_overrides(read_recipe(recipe_path), list(overrides or []))
    if launcher:
        recipe.setdefault("run", {})["launcher"] = launcher
    return plan_recipe(recipe, default_name=Path(recipe_path).stem)


def plan_recipe(recipe: dict[str, Any], default_name: str = "") -> tuple[dict[str, Any], Any]:
    """Check a recipe that is already a dict; returns (the recipe with every default filled, the plan), the plan
    being what ``node_specs_for`` needs for the recipe's ``run.kind``."""
    recipe = resolved(validate_recipe(recipe, {kind: system.model for kind, system in SYSTEMS.items()}))
    if recipe["run"]["launcher"] == "ray":  # an optional extra: say how to install it before anything starts
        from agents.ray_launcher import RayUnavailable, require_ray

        try:
            require_ray()
        except RayUnavailable as err:
            raise RecipeError(f"run.launcher: {err}") from None
    if not recipe["run"]["name"]:
        recipe["run"]["name"] = default_name
    return recipe, SYSTEMS[recipe["run"]["kind"]].plan(recipe)


def node_specs_for(recipe: dict[str, Any], plan: Any, run_dir: Path) -> list[NodeSpec]:
    """The processes of a planned recipe (env node and agents), whatever its ``run.kind``."""
    return SYSTEMS[recipe["run"]["kind"]].specs(recipe, plan, str(run_dir))


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
    return run_dir, _supervise(recipe, run_dir, records, node_specs_for(recipe, plan, run_dir), progress)


def resume(run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Continue a stopped or failed feed-forward run from its checkpoints to its budget, in the same folder."""
    run_dir = Path(run_dir)
    previous = read_summary(run_dir)
    if not (run_dir / "recipe.toml").is_file() or previous is None:
        raise RecipeError(f"{run_dir}: not a run folder (no recipe.toml and summary.json)")
    if previous["status"] == COMPLETED:
        raise RecipeError(f"{run_dir}: the run already completed; nothing to resume")
    recipe, plan = plan_recipe(read_recipe(run_dir / "recipe.toml"), default_name=run_dir.name)
    if recipe["run"]["kind"] != "feedforward":
        raise RecipeError(f"run.kind: only feed-forward runs can be resumed, this one is {recipe['run']['kind']!r}")
    if not checkpoint_path(run_dir, ENV).is_file():
        raise RecipeError(f"{run_dir}: no environment checkpoint to resume from (runs before checkpoints)")
    specs = [dataclasses.replace(s, kwargs={**s.kwargs, **(s.restart_kwargs or {})})
             for s in node_specs_for(recipe, plan, run_dir)]
    records = RunRecords(run_dir, recipe, resumed_from=previous["status"])
    return _supervise(recipe, run_dir, records, specs, progress)


def _supervise(recipe: dict[str, Any], run_dir: Path, records: RunRecords, specs: list,
               progress: bool) -> dict[str, Any]:
    ctx = zmq.Context()
    launcher = make_launcher(recipe, ctx)
    extra = getattr(launcher, "supervisor_kwargs", None)  # e.g. CURVE keys over tcp
    supervisor_kwargs = extra([s.name for s in specs]) if extra is not None else {}
    supervisor = Supervisor(specs, launcher, records, uuid.uuid4().hex[:8], ctx=ctx,
                            restarts=recipe["run"].get("restarts", 0), **supervisor_kwargs)
    try:
        with RunProgress(recipe["run"]["steps"], recipe["run"]["name"], enabled=progress) as bar, \
                sigterm_stops_the_run():
            records.listeners.append(bar)
            outcome = supervisor.run()
        summary = records.finish(outcome.status, outcome.error, {"steps": recipe["run"]["steps"]})
    finally:
        records.close()  # the JSONL files and TensorBoard writers, whatever ended the run
    try:
        learning_curves(run_dir)
        if recipe["run"]["kind"] in ("rl", "marl"):
            from .rl_system import return_curves

            return_curves(run_dir)
    except Exception as err:  # noqa: BLE001 - a plot must never lose a run
        print(f"warning: could not draw learning curves: {err}")
    ctx.destroy(linger=0)
    return summary
