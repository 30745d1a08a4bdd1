"""``dnilab bench``: the click group; each command prints a table and, with ``--json PATH``, writes its rows."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import click
from rich.console import Console

from ..recipe import RecipeError
from .table import Row, machine, print_table, write_json

_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def _console() -> Console:
    return Console(width=200) if not Console().is_terminal else Console()


def _sizes(text: str) -> list[int]:
    """"4K,64K,1M,16M" (binary units) or plain byte counts."""
    out = []
    for part in text.split(","):
        part = part.strip().lower().removesuffix("ib").removesuffix("b")
        mult = _UNITS.get(part[-1:], 1)
        out.append(int(float(part.rstrip("kmg")) * mult))
    return out


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _emit(title: str, rows: Sequence[Row], columns: Sequence[str], bench: str, json_path: str | None,
          collected: list[Row] | None = None) -> None:
    tagged = [{"bench": bench, **row} for row in rows]
    print_table(title, tagged, ["bench", *columns], _console())
    if json_path:
        write_json(json_path, tagged)
    if collected is not None:
        collected.extend(tagged)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def bench() -> None:
    """Benchmarks; every row carries its parameters and a ratio measured side by side in the same run."""


json_option = click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
                           help="Also write the rows as a JSON list to this file.")


def _check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A device this machine cannot give is rejected before anything starts, as a recipe's run.device is."""
    from agents import pick_device

    try:
        pick_device(0, value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    return value


device_option = click.option("--device", default="auto", show_default=True, callback=_check_device,
                             help="Device of the compute and fused agents: cpu, cuda, cuda:0 or auto (as run.device).")
out_option = click.option("--out", type=click.Path(file_okay=False), default=None,
                          help="Folder for the benchmark's run folders (default: a temporary folder).")


@bench.command()
@click.option("--sizes", default="4K,64K,1M,16M", show_default=True, help="Tensor sizes (K/M = KiB/MiB).")
@click.option("--transports", default="ipc,tcp", show_default=True)
@click.option("--seconds", default=1.0, show_default=True, help="Time per channel and size (split in rounds).")
@click.option("--rounds", default=5, show_default=True, help="Interleaved rounds per channel and size.")
@click.option("--no-curve", is_flag=True, help="Skip the CURVE-encrypted tcp rows.")
@click.option("--breakdown/--no-breakdown", default=True, show_default=True,
              help="Also time each stage of a message in one process (where the overhead goes).")
@json_option
def transport(sizes: str, transports: str, seconds: float, rounds: int, no_curve: bool, breakdown: bool,
              json_path: str | None, collected: list[Row] | None = None) -> None:
    """One tensor stream between two processes: dnilab's channel vs raw pyzmq (and CURVE vs plain tcp)."""
    from . import transport as t

    rows = t.bench_transport(_sizes(sizes), [x.strip() for x in transports.split(",")], seconds, rounds,
                             curve=not no_curve)
    if breakdown:
        parts = t.breakdown(_sizes(sizes))
        rows_all = rows + parts
        _emit("transport: dnilab channel vs raw pyzmq", rows, t.COLUMNS, "transport", None, collected)
        _emit("transport: cost per message by stage (one process)", parts, t.BREAKDOWN_COLUMNS,
              "transport-breakdown", None, collected)
        if json_path:
            write_json(json_path, [{"bench": "transport", **r} for r in rows_all])
    else:
        _emit("transport: dnilab channel vs raw pyzmq", rows, t.COLUMNS, "transport", json_path, collected)


@bench.command()
@click.option("--agents", "agents", default="2,4,8,16", show_default=True, help="Chain lengths N.")
@click.option("--stage-ms", default="5,20", show_default=True, help="Simulated device ms per forward/backward.")
@click.option("--modes", default="dni,unlock", show_default=True, help="Compared with backprop: dni, unlock.")
@click.option("--steps", default=12, show_default=True, help="Locked batches to measure per run (sets its time).")
@click.option("--min-seconds", default=3.0, show_default=True, help="Shortest measurement per run.")
@out_option
@json_option
def pipeline(agents: str, stage_ms: str, modes: str, steps: int, min_seconds: float, out: str | None,
             json_path: str | None, collected: list[Row] | None = None) -> None:
    """N sleeping agents in a chain: speed-up of dni and complete unlock over backprop (ideal N)."""
    from . import pipeline as p

    rows = p.bench_pipeline(_ints(agents), _floats(stage_ms), [m.strip() for m in modes.split(",")], steps,
                            min_seconds, Path(out) if out else None)
    _emit("pipeline: unlocked vs update-locked chains", rows, p.COLUMNS, "pipeline", json_path, collected)


@bench.command()
@click.option("--seconds", default=10.0, show_default=True, help="About this much training per run.")
@device_option
@out_option
@json_option
def compute(seconds: float, device: str, out: str | None, json_path: str | None,
            collected: list[Row] | None = None) -> None:
    """MNIST FCN: 2 agents cdni vs backprop; 4 agents in processes vs in one process."""
    from . import compute as c

    rows = c.bench_compute(seconds, device, Path(out) if out else None)
    _emit("compute: real MNIST FCN work", rows, c.COLUMNS, "compute", json_path, collected)


@bench.command()
@click.option("--seconds", default=8.0, show_default=True, help="About this much training per measurement.")
@device_option
@out_option
@json_option
def fused(seconds: float, device: str, out: str | None, json_path: str | None,
          collected: list[Row] | None = None) -> None:
    """The FCN as one dnilab agent vs a plain PyTorch training loop of the same network."""
    from . import fused as f

    rows = f.bench_fused(seconds, device, Path(out) if out else None)
    _emit("fused: one dnilab agent vs plain PyTorch", rows, f.COLUMNS, "fused", json_path, collected)


@bench.command()
@click.option("--seconds", default=8.0, show_default=True, help="About this much training per run.")
@click.option("--agents", "n_agents", default=16, show_default=True, help="N of the pipeline measured.")
@out_option
@json_option
def memory(seconds: float, n_agents: int, out: str | None, json_path: str | None,
           collected: list[Row] | None = None) -> None:
    """Peak RSS per agent and of the supervisor; no growth with a 10x slowed agent."""
    from . import memory as m

    peaks, growth = m.bench_memory(seconds, Path(out) if out else None, agents=n_agents)
    _emit("memory: peak RSS (ratio = peak / 400 MB)", peaks, m.PEAK_COLUMNS, "memory", None, collected)
    _emit("memory: one agent slowed 10x (ratio = end / early RSS)", growth, m.GROWTH_COLUMNS, "memory-growth",
          None, collected)
    if json_path:
        write_json(json_path, [{"bench": "memory", **r} for r in peaks]
                   + [{"bench": "memory-growth", **r} for r in growth])


@bench.command()
@click.option("--recipes", default=None, help="Comma-separated recipe paths; the first is the baseline "
              "[default: runs/multiscale-{backprop,dni,cdni}.toml].")
@click.option("--steps", default=4000, show_default=True, help="Environment steps per recipe.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override applied to every recipe.")
@out_option
@json_option
def multiscale(recipes: str | None, steps: int, overrides: tuple[str, ...], out: str | None, json_path: str | None,
               collected: list[Row] | None = None) -> None:
    """Multi-timescale controllers: ms per step and each process's CPU ms per step; the floors they set."""
    from . import multiscale as m

    paths = [r.strip() for r in recipes.split(",")] if recipes else list(m.DEFAULT_RECIPES)
    try:
        rows = m.bench_multiscale(paths, steps, overrides, Path(out) if out else None)
    except RecipeError as err:
        raise click.UsageError(f"bad recipe: {err}") from None
    _emit("multiscale: where each step's time goes (ratios vs the first recipe)", rows, m.columns(rows),
          "multiscale", json_path, collected)


@bench.command()
@click.option("--models", default="mlp,cnn", show_default=True, help="mlp (MNIST), cnn (generated [3,32,32] images).")
@click.option("--agents", "agents", default="2", show_default=True, help="Numbers of agents N.")
@click.option("--seeds", default="0", show_default=True, help="Seeds; each runs every system.")
@click.option("--modes", default="torch,backprop,dni,cdni,unlock", show_default=True,
              help="Systems; torch (the one-process loop) always runs: its final accuracy is the threshold.")
@click.option("--steps", default=600, show_default=True, help="Training batches of the one-process baseline.")
@click.option("--eval-every", default=50, show_default=True, help="Batches between evaluations (every system).")
@click.option("--budget", default=2.0, show_default=True, help="Other systems train this times the baseline's time.")
@click.option("--width", default=512, show_default=True, help="mlp: units per layer.")
@click.option("--channels", default=16, show_default=True, help="cnn: channels of the first block (doubled per pool).")
@click.option("--layers-per-agent", default=2, show_default=True, help="Layers each agent owns.")
@click.option("--batch", type=int, default=None, help="Examples per batch [default: 256 mlp, 32 cnn].")
@click.option("--data-limit", type=int, default=None, help="Fewer training examples (a smoke run).")
@click.option("--eval-limit", type=int, default=None, help="Fewer test examples [default: 2048 mlp, 1024 cnn].")
@click.option("--launcher", type=click.Choice(["local", "inproc"]), default="local", show_default=True,
              help="inproc: every agent in this process (a smoke run, not a measurement).")
@click.option("--figures", type=click.Path(file_okay=False), default=None,
              help="Folder for the PNGs, one per model and N [default: the --out folder, if given].")
@device_option
@out_option
@json_option
def speedup(models: str, agents: str, seeds: str, modes: str, steps: int, eval_every: int, budget: float, width: int,
            channels: int, layers_per_agent: int, batch: int | None, data_limit: int | None, eval_limit: int | None,
            launcher: str,
            figures: str | None, device: str, out: str | None, json_path: str | None,
            collected: list[Row] | None = None) -> None:
    """Speed at equal accuracy: time for each system to reach the one-process baseline's final accuracy."""
    from . import speedup as s

    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    settings = s.Settings(steps=steps, eval_every=eval_every, budget=budget, device=device, launcher=launcher,
                          width=width, channels=channels, layers_per_agent=layers_per_agent, batch=batch,
                          data_limit=data_limit,
                          eval_limit=eval_limit)
    figs = figures or out
    try:
        rows = s.bench_speedup([m.strip() for m in models.split(",")], _ints(agents), _ints(seeds), chosen, settings,
                               Path(out) if out else None, Path(figs) if figs else None)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    _emit("speedup: time to the one-process baseline's final accuracy (ratio = time / baseline's time)", rows,
          s.COLUMNS, "speedup", json_path, collected)
    slow = [r for r in rows if (r.get("thread_speedup") or 1.0) < 1.0]
    if slow:
        _console().print(f"[bold]warning[/bold]: in {len(slow)} baseline(s) one torch thread per core was slower than "
                         "one thread (thread_speedup < 1): the machine is loaded, these ratios are not a measurement")


@bench.command()
@click.option("--agents", "n_agents", default=2, show_default=True, help="N of the chain.")
@click.option("--modes", default="dni,backprop", show_default=True, help="Edges: dni, backprop, unlock.")
@click.option("--steps", default=2000, show_default=True, help="Training steps per run.")
@click.option("--profile/--no-profile", default=True, show_default=True,
              help="Also run under cProfile in every agent process: where a step's time goes.")
@out_option
@json_option
def floor(n_agents: int, modes: str, steps: int, profile: bool, out: str | None, json_path: str | None,
          collected: list[Row] | None = None) -> None:
    """The host time of an agent step with a tiny module (the per-step overhead), and a profile of it."""
    from . import floor as f

    rows, parts = f.bench_floor(n_agents, tuple(m.strip() for m in modes.split(",")), steps,
                                Path(out) if out else None, profile)
    _emit("floor: CPU ms per agent step, tiny modules (the framework's own cost)", rows, f.COLUMNS, "floor", None,
          collected)
    if parts:
        _emit("floor: where a step's time goes (cProfile, own time per step; slower than unprofiled)", parts,
              f.PART_COLUMNS, "floor-profile", None, collected)
    if json_path:
        write_json(json_path, [{"bench": "floor", **r} for r in rows]
                   + [{"bench": "floor-profile", **r} for r in parts])


@bench.command()
@click.option("--recipes", default="runs/cartpole-ppo-backprop.toml,runs/cartpole-ppo-dni.toml", show_default=True,
              help="Comma-separated RL recipe paths; the plain loop runs once per environment.")
@click.option("--steps", default=50_000, show_default=True, help="Env steps per run (all copies).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override applied to every recipe.")
@click.option("--no-plain", is_flag=True, help="Skip the single-process reference loop.")
@out_option
@json_option
def rl(recipes: str, steps: int, overrides: tuple[str, ...], no_plain: bool, out: str | None, json_path: str | None,
       collected: list[Row] | None = None) -> None:
    """RL recipes as dnilab agents vs the same PPO as one plain PyTorch loop: env steps/s and sample efficiency."""
    from . import rl as r

    try:
        rows = r.bench_rl([p.strip() for p in recipes.split(",")], steps, overrides, Path(out) if out else None,
                          plain=not no_plain)
    except RecipeError as err:
        raise click.UsageError(f"bad recipe: {err}") from None
    _emit("rl: dnilab agents vs one plain PPO loop (ratio = env steps/s vs the plain loop)", rows, r.COLUMNS, "rl",
          json_path, collected)


@bench.command()
@click.option("--recipe", default="runs/mnist-fcn4-cdni.toml", show_default=True, help="The run every case starts.")
@click.option("--seeds", default="0", show_default=True, help="Seeds; each runs every case.")
@click.option("--cases", default=",".join(("clean", "kill", "kill-twice", "resume", "stray")), show_default=True,
              help="clean (the baseline of its seed; put it first), kill, kill-twice, resume, stray.")
@click.option("--victim", default="l2", show_default=True, help="The node killed, and whose steps time every hit.")
@click.option("--at", default=0.5, show_default=True, help="Fraction of run.steps at which the victim is hit.")
@click.option("--checkpoint-every", default=200, show_default=True, help="run.checkpoint_every of every case.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override applied to every case.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder for the cases' run folders.")
@json_option
def faults(recipe: str, seeds: str, cases: str, victim: str, at: float, checkpoint_every: int,
           overrides: tuple[str, ...], out: str, json_path: str | None, collected: list[Row] | None = None) -> None:
    """What a run survives: kill -9 and restart, killed twice, SIGTERM and resume, stray frames into every inbox."""
    from . import faults as f

    settings = f.Settings(recipe=recipe, victim=victim, at=at, checkpoint_every=checkpoint_every,
                          overrides=overrides)
    try:
        rows = f.bench_faults(_ints(seeds), [c.strip() for c in cases.split(",") if c.strip()], settings, Path(out))
    except RecipeError as err:
        raise click.UsageError(f"bad recipe: {err}") from None
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    _emit("faults: what a run survives (delta = test error - the clean run's of the same seed)", rows, f.COLUMNS,
          "faults", json_path, collected)


@bench.command(name="all")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write every benchmark's rows as one JSON list.")
@device_option
@click.option("--quick", is_flag=True, help="Tiny sizes and budgets (a smoke run, not a measurement).")
@out_option
@click.pass_context
def all_(ctx: click.Context, json_path: str | None, device: str, quick: bool, out: str | None) -> None:
    """Every benchmark in turn (about 15 minutes on a 2-core machine)."""
    rows: list[Row] = []
    console = _console()
    console.print(f"machine: {machine()}")
    t0 = time.monotonic()
    base = Path(out) if out else None
    sub = (lambda name: str(base / name)) if base else (lambda name: None)
    if quick:
        ctx.invoke(transport, sizes="4K,1M", transports="ipc", seconds=0.2, rounds=2, no_curve=True,
                   breakdown=True, json_path=None, collected=rows)
        ctx.invoke(pipeline, agents="2", stage_ms="5", modes="dni", steps=4, min_seconds=1.0, out=sub("pipeline"),
                   json_path=None, collected=rows)
    else:
        ctx.invoke(transport, sizes="4K,64K,1M,16M", transports="ipc,tcp", seconds=1.0, rounds=5, no_curve=False,
                   breakdown=True, json_path=None, collected=rows)
        ctx.invoke(pipeline, agents="2,4,8,16", stage_ms="5,20", modes="dni,unlock", steps=12, min_seconds=3.0,
                   out=sub("pipeline"), json_path=None, collected=rows)
        ctx.invoke(compute, seconds=10.0, device=device, out=sub("compute"), json_path=None, collected=rows)
        ctx.invoke(fused, seconds=8.0, device=device, out=sub("fused"), json_path=None, collected=rows)
        ctx.invoke(memory, seconds=8.0, n_agents=16, out=sub("memory"), json_path=None, collected=rows)
        ctx.invoke(multiscale, recipes=None, steps=4000, overrides=(), out=sub("multiscale"), json_path=None,
                   collected=rows)
    console.print(f"all benchmarks took {time.monotonic() - t0:.0f} s")
    if json_path:
        write_json(json_path, rows)
