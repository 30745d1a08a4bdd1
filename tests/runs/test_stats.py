"""``runs.stats`` / ``dnilab stats``: grouping run folders by setting, summaries over seeds, paired tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner
from scipy import stats as sps

from runs.cli import main
from runs.stats import StatsError, compute, group_label, markdown, metric_value, paired_test, summarise


def _run(root: Path, name: str, seed: int, backward: str, error: float | None, status: str = "completed") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    recipe: dict[str, Any] = {"run": {"name": name, "kind": "feedforward", "seed": seed},
                              "env": {"id": "dnilab/MNIST-v0"}, "model": {"kind": "fcn", "depth": 4},
                              "defaults": {"edge": {"backward": backward}}}
    (folder / "recipe.toml").write_text(tomli_w.dumps(recipe))
    ev = {} if error is None else {"test_error": error}
    (folder / "summary.json").write_text(json.dumps({"status": status, "name": name, "eval": ev}))
    return folder


# test errors per seed: cdni is below backprop on every seed
BACKPROP = [2.0, 2.2, 2.1, 2.5]
CDNI = [1.8, 2.1, 1.7, 2.0]


@pytest.fixture()
def sweep(tmp_path: Path) -> Path:
    for seed, (b, c) in enumerate(zip(BACKPROP, CDNI)):
        _run(tmp_path, f"fcn4-backprop-seed{seed}", seed, "backprop", b)
        _run(tmp_path, f"fcn4-cdni-seed{seed}", seed, "cdni", c)
    _run(tmp_path, "fcn4-dni-seed0", 0, "dni", 3.0)  # a group of one: no pair test with one shared seed
    _run(tmp_path, "fcn4-dni-seed1", 1, "dni", 9.9, status="failed")
    _run(tmp_path, "fcn4-none-seed0", 0, "none", None)
    return tmp_path


def test_groups_by_folder_name_without_seed_suffix(sweep: Path) -> None:
    result = compute([sweep])
    assert result["metric"] == "eval.test_error"  # the first usual metric the runs have
    groups = {g["label"]: g for g in result["groups"]}
    assert sorted(groups) == ["fcn4-backprop", "fcn4-cdni", "fcn4-dni"]
    bp = groups["fcn4-backprop"]
    assert bp["n"] == 4 and [r["value"] for r in bp["runs"]] == BACKPROP  # ordered by seed
    assert bp["mean"] == pytest.approx(sum(BACKPROP) / 4)
    assert bp["sem"] == pytest.approx(sps.sem(BACKPROP))
    assert (bp["min"], bp["max"]) == (2.0, 2.5)
    assert groups["fcn4-dni"]["sem"] is None  # one value: no standard error
    reasons = sorted(s["reason"] for s in result["skipped"])
    assert reasons == ["no number at eval.test_error", "status failed"]


def test_paired_difference_and_tests(sweep: Path) -> None:
    result = compute([sweep])
    assert len(result["pairs"]) == 1  # dni shares only seed 0 with the others: not compared
    pair = result["pairs"][0]
    assert (pair["a"], pair["b"], pair["n"]) == ("fcn4-backprop", "fcn4-cdni", 4)
    diffs = [c - b for b, c in zip(BACKPROP, CDNI)]
    assert pair["mean_diff"] == pytest.approx(sum(diffs) / 4)
    assert pair["sem_diff"] == pytest.approx(sps.sem(diffs))
    assert pair["b_below_a"] == 4
    assert pair["t_p"] == pytest.approx(sps.ttest_rel(CDNI, BACKPROP).pvalue)
    assert pair["wilcoxon_p"] == pytest.approx(sps.wilcoxon(CDNI, BACKPROP).pvalue)
    assert pair["wilcoxon_p"] == pytest.approx(0.125)  # exact: 2 of the 2^4 sign patterns are as extreme


def test_group_by_recipe_key_and_baseline(sweep: Path) -> None:
    result = compute([sweep], by=["defaults.edge.backward"], baseline="defaults.edge.backward=cdni")
    labels = [g["label"] for g in result["groups"]]
    assert labels == ["defaults.edge.backward=backprop", "defaults.edge.backward=cdni",
                      "defaults.edge.backward=dni"]
    assert [(p["a"], p["b"]) for p in result["pairs"]] == [("defaults.edge.backward=cdni",
                                                            "defaults.edge.backward=backprop")]
    assert result["pairs"][0]["mean_diff"] > 0  # backprop - cdni
    with pytest.raises(StatsError, match="--baseline 'nope' is not a group"):
        compute([sweep], baseline="nope")


def test_group_label_missing_key_and_duplicate_seeds(tmp_path: Path) -> None:
    run = {"name": "x", "dir": tmp_path / "x-seed3", "recipe": {"run": {"seed": 3}}}
    assert group_label(run, []) == "x"
    assert group_label(run, ["model.depth"]) == "model.depth=—"
    _run(tmp_path, "a-seed0", 0, "dni", 1.0)
    _run(tmp_path, "a-seed1", 1, "dni", 2.0)
    _run(tmp_path / "again", "a-seed0", 0, "dni", 1.5)  # same seed twice in one group
    result = compute([tmp_path], by=["defaults.edge.backward"])
    assert result["groups"][0]["n"] == 3
    assert any("share a run.seed" in n for n in result["notes"])


def test_paired_test_edge_cases() -> None:
    same = paired_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same["mean_diff"] == 0 and same["wilcoxon_p"] is None  # all-zero differences: no Wilcoxon
    shift = paired_test([2.0, 2.0], [4.0, 4.0])  # the same difference twice: t undefined, Wilcoxon defined
    assert shift["mean_diff"] == 2 and shift["sem_diff"] == 0 and shift["t_p"] is None
    assert shift["wilcoxon_p"] == pytest.approx(0.5)
    one = paired_test([1.0], [2.0])
    assert one["sem_diff"] is None and one["t_p"] is None
    assert summarise([4.0])["sem"] is None


def test_metric_value_paths() -> None:
    summary = {"eval": {"test_bpc": 1.5, "bad": float("nan"), "flag": True}, "wall_s": 3}
    assert metric_value(summary, "eval.test_bpc") == 1.5
    assert metric_value(summary, "test_bpc") == 1.5  # a bare name is looked up in eval
    assert metric_value(summary, "wall_s") == 3.0
    assert metric_value(summary, "eval.bad") is None and metric_value(summary, "eval.flag") is None


def test_markdown_and_cli(sweep: Path, tmp_path: Path) -> None:
    text = markdown(compute([sweep]))
    assert "| fcn4-backprop | 4 | 2.2 ± 0.11 | 2 | 2.5 | 0: 2, 1: 2.2, 2: 2.1, 3: 2.5 |" in text
    assert "| fcn4-backprop | fcn4-cdni | 4 | -0.3 ± 0.091 | 4/4 | 0.0462 | 0.125 |" in text
    out = tmp_path / "stats.json"
    res = CliRunner().invoke(main, ["stats", str(sweep), "--metric", "eval.test_error", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "mean B − A ± s.e." in res.output
    data = json.loads(out.read_text())
    assert data["pairs"][0]["n"] == 4 and data["groups"][2]["sem"] is None
    res = CliRunner().invoke(main, ["stats", str(sweep), "--metric", "eval.nothing"])
    assert res.exit_code == 2 and "no completed run has a number at eval.nothing" in res.output
