"""``dnilab stats``: a metric over seeds, per setting, and paired tests between settings.

A single run says little: two settings a few tenths of a percent apart on one seed may swap on the next.
This module groups finished run folders by setting, summarises each group (n, mean ± standard error, min,
max, every value) and, for two groups whose runs share two or more seeds, tests the paired difference — the same seed
gives both settings the same initial weights and data order, so pairing removes most of the seed noise.

Grouping rule: with ``by`` (dotted keys of the resolved ``recipe.toml``, e.g. ``defaults.edge.backward``),
runs with equal values of those keys form a group; without it, runs whose folder names are equal once a trailing
``-seed<N>`` is removed (``charlm-t8-bptt-20k-seed3`` -> ``charlm-t8-bptt-20k``; the folder, not ``run.name``,
because seeds of one recipe often share its name). Runs are paired across
two groups by the value of ``pair_by`` (default ``run.seed``). Runs that did not complete, or lack the
metric, are left out and listed. The statistics are ``scipy.stats``: ``sem`` (standard error, n - 1),
``ttest_rel`` and ``wilcoxon`` (both two-sided).
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from .records import COMPLETED
from .report import METRICS, collect_runs

_SEED_SUFFIX = re.compile(r"-seed\d+$")
_UNSET = "—"
MIN_PAIRS = 2
"""Two groups are compared only when at least this many pair values (seeds) are in both."""


class StatsError(ValueError):
    """Bad input to ``dnilab stats`` (no runs, unknown metric...); the message names what is wrong."""


def dotted(table: dict[str, Any], key: str) -> Any:
    """``table["a"]["b"]`` for ``key = "a.b"``; None when any part is missing."""
    value: Any = table
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def metric_value(summary: dict[str, Any], metric: str) -> float | None:
    """The finite number at ``metric`` (a dotted path into summary.json; a bare name is looked up in
    ``eval``), else None."""
    value = dotted(summary, metric)
    if value is None and "." not in metric:
        value = dotted(summary, f"eval.{metric}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def default_metric(runs: list[dict[str, Any]]) -> str:
    """``eval.<key>`` of the first of ``report.METRICS`` that some run's final evaluation has."""
    for key, *_ in METRICS:
        if any(metric_value(r["summary"], f"eval.{key}") is not None for r in runs):
            return f"eval.{key}"
    raise StatsError("no run has any of the usual metrics (" + ", ".join(f"eval.{k}" for k, *_ in METRICS)
                     + "); name one with --metric")


def group_label(run: dict[str, Any], by: list[str]) -> str:
    """The setting a run belongs to (see the module docstring for the rule)."""
    if not by:
        return _SEED_SUFFIX.sub("", Path(run["dir"]).name)
    parts = []
    for key in by:
        value = dotted(run["recipe"], key)
        parts.append(f"{key}={_UNSET if value is None else value}")
    return ", ".join(parts)


def _f(value: float) -> float | None:
    """NaN -> None, so the JSON output is standard JSON."""
    return None if value is None or not math.isfinite(value) else float(value)


def summarise(values: list[float]) -> dict[str, Any]:
    """n, mean, standard error of the mean (None for one value), min and max."""
    arr = np.asarray(values, dtype=float)
    sem = float(sps.sem(arr)) if len(arr) > 1 else float("nan")
    return {"n": len(arr), "mean": float(np.mean(arr)), "sem": _f(sem), "min": float(arr.min()),
            "max": float(arr.max())}


def paired_test(a: list[float], b: list[float]) -> dict[str, Any]:
    """Paired difference b - a: mean ± s.e., how many pairs have b < a, paired t-test and Wilcoxon p (None
    where a test is undefined: one pair; all differences equal (t); all differences zero (Wilcoxon))."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = y - x
    out: dict[str, Any] = {"n": len(diff), "mean_diff": float(np.mean(diff)), "sem_diff": None,
                           "b_below_a": int(np.sum(diff < 0)), "t_p": None, "wilcoxon_p": None}
    if len(diff) > 1:
        out["sem_diff"] = _f(float(sps.sem(diff)))
        if np.ptp(diff) > 0:  # equal differences: no spread, the t statistic is undefined
            out["t_p"] = _f(float(sps.ttest_rel(y, x).pvalue))
        if np.any(diff != 0):  # scipy refuses all-zero differences
            out["wilcoxon_p"] = _f(float(sps.wilcoxon(y, x, alternative="two-sided").pvalue))
    return out


def compute(paths: list[Path], metric: str | None = None, by: list[str] | None = None,
            pair_by: str = "run.seed", baseline: str | None = None) -> dict[str, Any]:
    """Groups and paired comparisons of the runs found under ``paths`` (run folders or folders of them).

    Returns ``{"metric", "by", "pair_by", "groups": [...], "pairs": [...], "skipped": [...], "notes": [...]}``;
    each group has ``label``, the ``summarise`` fields and ``runs`` (``name``, ``dir``, ``pair``, ``value``);
    each pair has ``a``, ``b`` (group labels) and the ``paired_test`` fields, the difference being b - a.
    ``baseline``: compare only this group (its label) with each other group.
    """
    by = list(by or [])
    runs = collect_runs(paths)
    if not runs:
        raise StatsError("no run folders (with summary.json) found under " + ", ".join(map(str, paths)))
    metric = metric or default_metric(runs)
    skipped: list[dict[str, str]] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        value = metric_value(run["summary"], metric)
        if run["status"] != COMPLETED:
            skipped.append({"dir": str(run["dir"]), "reason": f"status {run['status']}"})
        elif value is None:
            skipped.append({"dir": str(run["dir"]), "reason": f"no number at {metric}"})
        else:
            pair = dotted(run["recipe"], pair_by)
            groups.setdefault(group_label(run, by), []).append(
                {"name": run["name"], "dir": str(run["dir"]), "pair": pair, "value": value})
    if not groups:
        raise StatsError(f"no completed run has a number at {metric}")
    out_groups = []
    for label in sorted(groups):
        members = sorted(groups[label], key=lambda r: (_natural(str(r["pair"])), r["name"]))
        out_groups.append({"label": label, **summarise([r["value"] for r in members]), "runs": members})
    if baseline is not None and baseline not in groups:
        raise StatsError(f"--baseline {baseline!r} is not a group; groups: " + "; ".join(sorted(groups)))
    pairs, notes = _pairs(out_groups, pair_by, baseline)
    return {"metric": metric, "by": by, "pair_by": pair_by, "groups": out_groups, "pairs": pairs,
            "skipped": skipped, "notes": notes}


def _pairs(groups: list[dict[str, Any]], pair_by: str, baseline: str | None) -> tuple[list[dict], list[str]]:
    """Paired tests between every two groups (or the baseline and each other) sharing ``MIN_PAIRS`` values."""
    notes: list[str] = []
    keyed: dict[str, dict[Any, float]] = {}
    for g in groups:
        values = [r["pair"] for r in g["runs"]]
        if any(v is None for v in values):
            notes.append(f"{g['label']}: some runs have no {pair_by}; not paired")
        elif len(set(map(str, values))) < len(values):
            notes.append(f"{g['label']}: two runs share a {pair_by}; not paired (group them apart with --by)")
        else:
            keyed[g["label"]] = {str(r["pair"]): r["value"] for r in g["runs"]}
    labels = [g["label"] for g in groups if g["label"] in keyed]
    if baseline is not None:
        combos = [(baseline, other) for other in labels if other != baseline] if baseline in keyed else []
    else:
        combos = list(itertools.combinations(labels, 2))
    pairs = []
    for a, b in combos:
        shared = sorted(set(keyed[a]) & set(keyed[b]), key=_natural)
        if len(shared) >= MIN_PAIRS:
            test = paired_test([keyed[a][k] for k in shared], [keyed[b][k] for k in shared])
            pairs.append({"a": a, "b": b, "shared": shared, **test})
    return pairs, notes


def _natural(text: str) -> tuple:
    """Sort "2" before "10"."""
    return (0, int(text), "") if text.lstrip("-").isdigit() else (1, 0, text)


def _num(value: float | None, fmt: str = "{:.4g}") -> str:
    return "—" if value is None else fmt.format(value)


def _pm(mean: float, sem: float | None) -> str:
    return _num(mean) + ("" if sem is None else f" ± {_num(sem, '{:.2g}')}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(result: dict[str, Any]) -> str:
    """The groups table, then the paired table, in markdown (for docs to quote)."""
    pair_by = result["pair_by"]
    short = pair_by.rsplit(".", 1)[-1]
    lines = [f"metric: `{result['metric']}`; groups: "
             + (", ".join(f"`{k}`" for k in result["by"]) if result["by"] else "run folder name without `-seed<N>`")
             + f"; pairs matched by `{pair_by}`", "",
             "| group | n | mean ± s.e. | min | max | values (" + short + ": value) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for g in result["groups"]:
        values = ", ".join(f"{r['pair']}: {_num(r['value'])}" for r in g["runs"])
        lines.append(f"| {_cell(g['label'])} | {g['n']} | {_pm(g['mean'], g['sem'])} | {_num(g['min'])} | "
                     f"{_num(g['max'])} | {values} |")
    if result["pairs"]:
        lines += ["", "| A | B | pairs | mean B − A ± s.e. | B < A | paired t p | Wilcoxon p |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for p in result["pairs"]:
            lines.append(f"| {_cell(p['a'])} | {_cell(p['b'])} | {p['n']} | {_pm(p['mean_diff'], p['sem_diff'])} "
                         f"| {p['b_below_a']}/{p['n']} | {_num(p['t_p'], '{:.3g}')} "
                         f"| {_num(p['wilcoxon_p'], '{:.3g}')} |")
    for line in result["notes"]:
        lines.append(f"\nnote: {line}")
    reasons: dict[str, list[str]] = {}
    for item in result["skipped"]:
        reasons.setdefault(item["reason"], []).append(Path(item["dir"]).name)
    for reason, names in reasons.items():
        lines.append(f"\nleft out ({reason}): " + ", ".join(names))
    return "\n".join(lines)
