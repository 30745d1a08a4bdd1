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
@click.argument("recipe", type=click.Path(dir_okay=False))
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
    """Run RECIPE (a TOML file). Prints the run folder as its last line; exit status 0 only if completed."""
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
