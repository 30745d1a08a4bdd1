"""Run a shipped recipe from Python, with a tiny budget, and read what it wrote.

``runs.run`` checks the recipe (a bad key raises ``runs.RecipeError`` before anything starts), runs it as
``dnilab run`` would, and returns the run's summary with ``run_dir``, its folder.

    python examples/run_recipe.py [OUT]
"""

from __future__ import annotations

import sys

import runs

TINY = {
    "run.steps": 40, "run.eval_every": 20, "run.metrics_every": 10,
    "env.kwargs.limit": 2048, "env.kwargs.batch_size": 64, "env.eval": {"split": "test", "limit": 512},
    "model.hidden": 32, "defaults.agent.optimizer": {"name": "adam", "lr": 2e-3},
    "defaults.edge.synthesizer": {"hidden": [], "lr": 2e-3},
}


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else None  # default: a new folder under out/
    # the default recipe: 4-layer MNIST FCN with conditioned synthetic gradients; "inproc" runs its agents as
    # threads of this process (launcher=None: one process each, as the recipe says)
    summary = runs.run("mnist-fcn4-cdni", TINY, out=out, launcher="inproc")
    print(f"{summary['status']}: test error {summary['eval']['test_error']:.1f} % after {summary['steps']} steps "
          f"in {summary['wall_s']:.1f} s")
    print(f"metrics, checkpoints and TensorBoard events in {summary['run_dir']}")
    sys.exit(0 if summary["status"] == "completed" else 1)


if __name__ == "__main__":
    main()
