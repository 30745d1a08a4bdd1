"""dnilab runs: recipes (TOML), the ``dnilab`` CLI, run folders, reports and plots.

Public API: ``run`` (one recipe, from a file, a shipped name or a dict, checked and run; returns its summary),
``prepare`` (read + check a recipe, nothing started), ``execute`` (run it, write the run folder), ``resume``
(continue a stopped or failed run in its folder, from its checkpoints), ``RecipeError``, ``RunRecords``,
``learning_curves``; the CLI entry point is ``runs.cli:main``.
"""

from .api import run
from .execute import execute, prepare, resume
from .plots import learning_curves
from .recipe import RecipeError
from .records import RunRecords

__all__ = ["RecipeError", "RunRecords", "execute", "learning_curves", "prepare", "resume", "run"]
