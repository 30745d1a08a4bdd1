"""The recurrent comparison figures: run folders are read by task and mode, diverged DNI runs kept off the SG axes."""

from __future__ import annotations

import json
from pathlib import Path

from runs.plot_recurrent import diverged, load_runs, one_seed, paired, plot_charlm, plot_charlm_paired


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


def _seeded(root: Path, name: str, agent: str, seed: int, valid: float, test: float) -> None:
    folder = root / name
    (folder / "metrics").mkdir(parents=True)
    (folder / "recipe.toml").write_text(
        f'[run]\nseed = {seed}\nsteps = 100\n[env]\nid = "dnilab/CharLM-v0"\n'
        f"[agent]\nwindow = 8\nbatch_size = 4\n{agent}"
    )
    (folder / "metrics" / "recurrent.jsonl").write_text(json.dumps({"step": 100, "valid_bpc": valid}) + "\n")
    (folder / "summary.json").write_text(
        json.dumps({"status": "completed", "eval": {"valid_bpc": valid, "test_bpc": test}})
    )


def test_paired_figure_matches_dni_settings_to_bptt_by_seed(tmp_path: Path) -> None:
    for seed, (bptt, dni, other) in enumerate([(2.40, 2.38, 2.50), (2.42, 2.43, 2.60), (2.41, 2.37, 2.40)]):
        _seeded(tmp_path, f"bptt-s{seed}", 'sg = "none"\nsg_scale = 1.0', seed, bptt, bptt - 0.1)
        _seeded(tmp_path, f"dni-s{seed}", 'sg = "dni"\nsg_scale = 0.5', seed, dni, dni - 0.1)
        if seed < 2:  # a second DNI setting with two seeds, and one the baseline never ran
            _seeded(tmp_path, f"dni-avg-s{seed}", 'sg = "dni"\nsg_scale = 0.5\nsg_average = 0.9', seed, other, other)
    _seeded(tmp_path, "dni-s7", 'sg = "dni"\nsg_scale = 0.5', 7, 2.0, 2.0)  # no BPTT with seed 7: not paired
    runs = load_runs(tmp_path)
    pairs = {(g[0]["agent"].get("sg_average"), len(g)): diffs for g, diffs in paired(runs)}
    assert set(pairs) == {(None, 4), (0.9, 2)}
    dni = pairs[(None, 4)]
    assert sorted(dni) == [0, 1, 2]
    assert [round(dni[s]["valid_bpc"], 6) for s in (0, 1, 2)] == [-0.02, 0.01, -0.04]
    assert round(dni[2]["test_bpc"], 6) == -0.04
    assert [round(d["valid_bpc"], 6) for d in pairs[(0.9, 2)].values()] == [0.1, 0.18]
    assert sorted(r["name"] for r in one_seed(runs)) == ["bptt-s0", "dni-avg-s0", "dni-s0"]
    path = plot_charlm_paired(runs, tmp_path)
    assert path is not None and path.stat().st_size > 10_000
    assert plot_charlm_paired(runs[:1], tmp_path) is None  # nothing paired: no figure
