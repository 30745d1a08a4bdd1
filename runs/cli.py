"""The ``dnilab`` command line: run recipes and sweeps, fetch data, report and benchmark."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .recipe import RecipeError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dnilab")
def main() -> None:
    """dnilab: neural networks in separate processes that learn together through Decoupled Neural Interfaces."""


@main.command()
@click.argument("recipe")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key, e.g. --set run.steps=200 (repeatable).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run folder (default: out/<time>-<name>).")
@click.option("--launcher", type=click.Choice(["local", "inproc", "ray"]), default=None,
              help="Where agents run: local processes (default), all in this process, or Ray actors.")
@click.option("--address", default=None, help="Ray cluster address (with --launcher ray); default: start a local one.")
@click.option("--keys", type=click.Path(file_okay=False), default=None,
              help="CURVE key directory for tcp/ray runs (missing keys are created there).")
@click.option("--quiet", is_flag=True, help="No progress display.")
def run(recipe: str, overrides: tuple[str, ...], out: str | None, launcher: str | None, address: str | None,
        keys: str | None, quiet: bool) -> None:
    """Run RECIPE (a TOML file, or the name of a shipped recipe: dnilab recipes). Prints the run folder as its
    last line; exit status 0 only if completed."""
    from .execute import execute, prepare

    extra = list(overrides) + ([f"run.address={address!r}"] if address else []) + \
        ([f"run.keys={keys!r}"] if keys else [])
    try:
        prepared, plan = prepare(recipe, extra, launcher)
    except RecipeError as err:
        raise click.UsageError(f"bad recipe: {err}") from None
    if out is not None and (Path(out) / "meta.json").exists():  # appending would mix two runs' records
        raise click.UsageError(f"--out {out}: already holds a run; choose a new folder or delete that one")
    run_dir, summary = execute(prepared, plan, out=out, recipe_path=recipe, progress=not quiet)
    _print_summary(summary)
    if summary["status"] != "completed" and summary.get("error"):
        click.echo(summary["error"], err=True)
    click.echo(str(run_dir))
    sys.exit(0 if summary["status"] == "completed" else 1)


@main.command(name="resume")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--quiet", is_flag=True, help="No progress display.")
def resume_run(run_dir: str, quiet: bool) -> None:
    """Continue RUN_DIR, a feed-forward run that was stopped or failed, from its checkpoints to its budget."""
    from .execute import resume

    try:
        summary = resume(run_dir, progress=not quiet)
    except RecipeError as err:
        raise click.UsageError(str(err)) from None
    _print_summary(summary)
    if summary["status"] != "completed" and summary.get("error"):
        click.echo(summary["error"], err=True)
    click.echo(str(run_dir))
    sys.exit(0 if summary["status"] == "completed" else 1)


def _print_summary(summary: dict) -> None:
    ev = summary.get("eval", {})
    shown = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in ev.items()
                      if k.startswith(("test_", "valid_", "max_", "mean_return", "steps_to_threshold")))
    click.echo(f"{summary.get('name', '')}: {summary['status']} in {summary.get('wall_s', 0):.1f} s"
               + (f"; composed system: {shown}" if shown else ""))


@main.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Folder of the sweep's runs.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override every cell's recipe.")
@click.option("--only", multiple=True, help="Run only cells whose name contains this text (repeatable).")
def sweep(sweep_file: str, out: str | None, overrides: tuple[str, ...], only: tuple[str, ...]) -> None:
    """Run every cell of a sweep; cells whose run folder says 'completed' are skipped (resumable)."""
    from .sweep import run_sweep

    try:
        results = run_sweep(sweep_file, out, list(overrides), list(only))
    except RecipeError as err:
        raise click.UsageError(f"bad sweep: {err}") from None
    failed = [name for name, status in results if status != "completed"]
    click.echo(f"{len(results) - len(failed)}/{len(results)} cells completed")
    sys.exit(1 if failed else 0)


@main.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False))
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Also draw composed error vs time.")
def report(run_dirs: tuple[str, ...], plot: str | None) -> None:
    """Markdown table of RUN_DIRS (folders, or folders of run folders) beside the paper's numbers."""
    from .report import collect_runs, markdown_table, plot_error_vs_time

    runs = collect_runs([Path(p) for p in run_dirs])
    if not runs:
        raise click.UsageError("no run folders (with summary.json) found")
    click.echo(markdown_table(runs))
    if plot:
        plot_error_vs_time(runs, Path(plot))
        click.echo(f"\nplot: {plot}")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--metric", default=None,
              help="Dotted path into summary.json, e.g. eval.test_error (default: the first of eval.test_error, "
                   "eval.max_length, eval.test_bpc, eval.valid_bpc, eval.test_accuracy that the runs have).")
@click.option("--by", "by", multiple=True, metavar="KEY",
              help="Group by this dotted recipe key, e.g. defaults.edge.backward (repeatable; default: the run "
                   "folder name without a trailing -seed<N>).")
@click.option("--pair-by", default="run.seed", show_default=True, help="Recipe key that pairs runs across groups.")
@click.option("--baseline", default=None, help="Compare only this group (its label) with each other group.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Also write the results.")
def stats(run_dirs: tuple[str, ...], metric: str | None, by: tuple[str, ...], pair_by: str, baseline: str | None,
          json_out: str | None) -> None:
    """Per setting: n, mean ± s.e., min, max of a metric over RUN_DIRS; paired t / Wilcoxon tests by seed."""
    from .records import write_json
    from .stats import StatsError, compute, markdown

    try:
        result = compute([Path(d) for d in run_dirs], metric, list(by), pair_by, baseline)
    except StatsError as err:
        raise click.UsageError(str(err)) from None
    click.echo(markdown(result))
    if json_out:
        write_json(Path(json_out), result)


@main.command()
@click.argument("dataset", type=click.Choice(["mnist", "shakespeare", "all"]))
def data(dataset: str) -> None:
    """Fetch and cache a dataset ($DNILAB_DATA, default ~/.cache/dnilab)."""
    import environments

    try:
        if dataset in ("mnist", "all"):
            click.echo(f"mnist: {environments.fetch_mnist()}")
        if dataset in ("shakespeare", "all"):
            click.echo(f"shakespeare: {len(environments.load_shakespeare()):,} characters cached")
    except environments.DataUnavailable as err:
        raise click.ClickException(str(err)) from None


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def compose(run_dir: str) -> None:
    """Evaluate RUN_DIR's agents composed into one network from their checkpoints (no synthesizers)."""
    from .compose import evaluate_composed

    try:
        result = evaluate_composed(run_dir)
    except (RecipeError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"composed network from checkpoints: test_error = {result['test_error']:.2f} %, "
               f"test_loss = {result['test_loss']:.6f} on {result['examples']} examples")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--boundaries", default=2000, show_default=True, help="Boundaries per run (x batch = rows).")
@click.option("--horizon", default=4, show_default=True, help="Windows of real text after each boundary.")
@click.option("--gamma", default=0.5, show_default=True, help="Discount per window (a DNI run's sg_scale).")
@click.option("--mlp-epochs", default=10, show_default=True, help="Epochs of the MLP probe (0: skip it).")
@click.option("--threads", default=1, show_default=True, help="Torch threads (a run's agent uses one).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Also write the results.")
def probe(run_dirs: tuple[str, ...], boundaries: int, horizon: int, gamma: float, mlp_epochs: int, threads: int,
          json_out: str | None) -> None:
    """How much of the gradient at a truncation boundary any M(h) could predict, on finished char-LM RUN_DIRS."""
    import torch

    from .records import write_json
    from .sg_ceiling import probe_run, table

    torch.set_num_threads(threads)
    try:
        results = [probe_run(Path(d), boundaries, horizon, gamma, mlp_epochs) for d in run_dirs]
    except (RecipeError, ValueError) as err:
        raise click.UsageError(str(err)) from None
    click.echo(table(results))
    if json_out:
        write_json(Path(json_out), results)


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--split", type=click.Choice(["valid", "test", "train"]), default="valid", show_default=True)
@click.option("--threads", default=1, show_default=True, help="Torch threads.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Also write the results.")
def bpc(run_dirs: tuple[str, ...], split: str, threads: int, json_out: str | None) -> None:
    """Bits per character of finished char-LM RUN_DIRS (best-validation weights) on each text of a split."""
    import torch

    from .bpc_by_text import bpc_by_text, table
    from .records import write_json

    torch.set_num_threads(threads)
    try:
        results = [bpc_by_text(Path(d), split) for d in run_dirs]
        click.echo(table(results))
    except (RecipeError, ValueError) as err:
        raise click.UsageError(str(err)) from None
    if json_out:
        write_json(Path(json_out), results)


@main.command()
@click.option("--target", type=click.Choice(["bootstrap", "oracle", "delayed", "backprop"]), default="bootstrap",
              show_default=True, help="What M learns from (backprop: no M, the end-to-end baseline).")
@click.option("--depth", default=4, show_default=True, help="Layers as the paper counts them.")
@click.option("--steps", default=4000, show_default=True, help="Training batches of --batch.")
@click.option("--batch", default=256, show_default=True)
@click.option("--lr", default=1e-4, show_default=True, help="The layers' Adam learning rate.")
@click.option("--sg-hidden", default="1024,1024", show_default=True, help="M's hidden layers ('' = linear M).")
@click.option("--sg-lr", default=1e-4, show_default=True)
@click.option("--sg-scale", default=1.0, show_default=True, help="Scale of the applied synthetic gradient.")
@click.option("--sg-warmup", default=0, show_default=True, help="Steps over which that scale ramps up from 0.")
@click.option("--sg-updates", default=1, show_default=True, help="M's optimizer steps per target.")
@click.option("--delay", default=0, show_default=True, help="Steps per hop of the delayed true-gradient wave.")
@click.option("--seed", default=0, show_default=True)
@click.option("--eval-every", default=500, show_default=True)
@click.option("--threads", default=1, show_default=True, help="Torch threads.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Write the record here.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def reference(target: str, depth: int, steps: int, batch: int, lr: float, sg_hidden: str, sg_lr: float,
              sg_scale: float, sg_warmup: int, sg_updates: int, delay: int, seed: int, eval_every: int,
              threads: int, json_out: str | None, quiet: bool) -> None:
    """One-process DNI reference on MNIST: what M learns from (bootstrapped, true, delayed true), with the
    gradient each layer applies measured against the true one."""
    import torch

    from agents import ReferenceConfig

    from .dni_reference import describe, reference_run

    torch.set_num_threads(threads)
    try:
        hidden = tuple(int(u) for u in sg_hidden.split(",") if u.strip())
        cfg = ReferenceConfig(target=target, depth=depth, steps=steps, batch=batch, lr=lr, sg_hidden=hidden,
                              sg_lr=sg_lr, sg_scale=sg_scale, sg_warmup=sg_warmup, sg_updates=sg_updates,
                              delay=delay, seed=seed, eval_every=eval_every)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    record = reference_run(cfg, Path(json_out) if json_out else None, progress=not quiet)
    click.echo(describe(record))


@main.command(name="reference-report")
@click.argument("records", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--baseline", default="bootstrap", show_default=True, help="Setting the others are paired against.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None, help="Also draw the curves.")
def reference_report(records: tuple[str, ...], baseline: str, plot_out: str | None) -> None:
    """Tabulate `dnilab reference` RECORDS (JSON): test error over seeds per setting, paired tests, cosines."""
    import json

    from .dni_reference import compare, plot

    loaded = [json.loads(Path(r).read_text()) for r in records]
    click.echo(compare(loaded, baseline))
    if plot_out:
        click.echo(f"\nplot: {plot(loaded, Path(plot_out))}")


@main.group()
def multiscale() -> None:
    """Multi-timescale runs: accuracy figures and comparisons of run folders."""


@multiscale.command(name="plot")
@click.argument("out", type=click.Path(dir_okay=False))
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--ymin", type=float, default=None, help="Cut the accuracy axes below this percentage.")
def multiscale_plot(out: str, run_dirs: tuple[str, ...], ymin: float | None) -> None:
    """OUT (a PNG): the slow agent's test accuracy vs training seconds and vs samples for RUN_DIRS."""
    from .multiscale_system import plot_multiscale

    click.echo(plot_multiscale([Path(p) for p in run_dirs], Path(out), ymin=ymin))


@multiscale.command(name="compare")
@click.argument("baseline", type=click.Path(exists=True, file_okay=False))
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False))
def multiscale_compare(baseline: str, run_dirs: tuple[str, ...]) -> None:
    """Final accuracy and time to reach BASELINE's final accuracy of each run (JSON lines)."""
    import json

    from .multiscale_system import compare

    for row in compare(Path(baseline), [Path(p) for p in run_dirs]):
        click.echo(json.dumps(row))


@multiscale.command(name="quarters")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("agent")
@click.argument("keys", nargs=-1, required=True)
def multiscale_quarters(run_dir: str, agent: str, keys: tuple[str, ...]) -> None:
    """Mean of each metric KEY of AGENT over each quarter of RUN_DIR's steps (one JSON line per key)."""
    import json

    from .multiscale_system import quarter_means

    for key, values in quarter_means(Path(run_dir), agent, list(keys)).items():
        click.echo(json.dumps({"agent": agent, "key": key, "quarters": [None if v is None else round(v, 4)
                                                                       for v in values]}))


@main.command(name="plot-recurrent")
@click.argument("root", type=click.Path(exists=True, file_okay=False), default="results/recurrent")
@click.argument("out", type=click.Path(file_okay=False), default="docs/img")
def plot_recurrent(root: str, out: str) -> None:
    """The recurrent comparison figures of the run folders under ROOT, written into OUT."""
    from .plot_recurrent import plot_all

    for path in plot_all(Path(root), Path(out)):
        click.echo(str(path))


@main.command(name="recipes")
def list_recipes() -> None:
    """List the recipes shipped in runs/."""
    folder = Path(__file__).resolve().parent
    for path in sorted(folder.glob("*.toml")):
        first = next((ln[1:].strip() for ln in path.read_text().splitlines() if ln.startswith("#")), "")
        click.echo(f"{path.relative_to(folder.parent)}  {first}")


from .bench.cli import bench  # noqa: E402

main.add_command(bench)

if __name__ == "__main__":
    main()
