"""The recurrent comparison figures: run folders are read by task and mode, diverged DNI runs kept off the SG axes."""

from __future__ import annotations

import json
from pathlib import Path

from runs.plot_recurrent import diverged, load_runs, plot_charlm


def _run(root: Path, name: str, sg: str, valid: list[float]) -> None:
    folder = root / name
    (folder / "metrics").mkdir(parents=True)
    (folder / "recipe.toml").write_text(
        f'[env]\nid = "dnilab/CharLM-v0"\n[agent]\nwindow = 8\nsg = "{sg}"\nbatch_size = 4\n'
    )
    rows = [{"step": 10 * (i + 1), "valid_bpc": v, "train_bpc": v, "grad_norm": 0.5, "sg_cosine": 0.01,
             "sg_norm_ratio": 0.4} for i, v in enumerate(valid)]
    (folder / "metrics" / "recurrent.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_charlm_figure_reads_modes_and_leaves_diverged_runs_off_the_sg_axes(tmp_path: Path) -> None:
    _run(tmp_path, "charlm-t8-bptt", "none", [3.0, 2.5])
    _run(tmp_path, "charlm-t8-dni", "dni", [3.1, 2.6])
    _run(tmp_path, "charlm-t8-dni-diverged", "dni", [4.9, 4.8])
    runs = {r["name"]: r for r in load_runs(tmp_path)}
    assert {n: (r["task"], r["mode"], r["T"]) for n, r in runs.items()} == {
        "charlm-t8-bptt": ("charlm", "bptt", 8),
        "charlm-t8-dni": ("charlm", "dni", 8),
        "charlm-t8-dni-diverged": ("charlm", "dni", 8),
    }
    assert [n for n, r in runs.items() if diverged(r)] == ["charlm-t8-dni-diverged"]
    path = plot_charlm(list(runs.values()), tmp_path)
    assert path is not None and path.stat().st_size > 10_000
    assert plot_charlm([], tmp_path) is None  # no char-LM run: no figure
