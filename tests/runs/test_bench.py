"""Smoke tests of ``dnilab bench``: every benchmark runs at tiny sizes and its rows carry their parameters
and a ratio. No timing targets here: those are measured by the benchmarks themselves."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from runs.bench import compute, fused, memory, multiscale, pipeline, transport
from runs.bench.cli import _sizes, bench
from runs.bench.envs import RandomBatches
from runs.bench.runner import run_recipe, steady_rate
from runs.bench.stacks import split_fcn
from runs.bench.table import markdown_table, write_json

from .conftest import MULTISCALE_TINY_NET


def _mnist_or_skip() -> None:
    from environments import DataUnavailable, load_mnist

    try:
        load_mnist()
    except DataUnavailable as err:
        pytest.skip(f"MNIST not available: {err}")


def _has(row: dict, *keys: str) -> None:
    missing = [k for k in (*keys, "ratio") if k not in row]
    assert not missing, f"row lacks {missing}: {row}"
    assert isinstance(row["ratio"], float)


def test_sizes_and_table_helpers(tmp_path):
    assert _sizes("4K,64KiB,1M,16m,100") == [4096, 65536, 2**20, 16 * 2**20, 100]
    rows = [{"a": 1, "ratio": 0.5, "met": True}]
    assert "| a | ratio | met |" in markdown_table(rows, ["a", "ratio", "met"])
    write_json(tmp_path / "r.json", rows)
    out = json.loads((tmp_path / "r.json").read_text())
    assert out[0]["ratio"] == 0.5 and out[0]["machine"]["nproc"] >= 1


def test_random_batches_env():
    env = RandomBatches(batch_size=4, features=3, split="test", eval_batches=2)
    obs, info = env.reset(seed=0)
    assert obs.shape == (4, 3) and info["target"].shape == (4,)
    assert env.step(None)[2] is False
    assert env.step(None)[2] is True


def test_transport_cli_writes_rows(tmp_path):
    path = tmp_path / "t.json"
    result = CliRunner().invoke(bench, ["transport", "--sizes", "4K", "--transports", "tcp", "--seconds", "0.1",
                                        "--rounds", "1", "--no-breakdown", "--json", str(path)])
    assert result.exit_code == 0, result.output
    rows = json.loads(path.read_text())
    assert {r["channel"] for r in rows} == {"dnilab", "dnilab+curve"}
    for row in rows:
        _has(row, "transport", "size_bytes", "msgs_per_s", "GB_per_s", "baseline", "machine")
        assert row["msgs_per_s"] > 0


def test_transport_breakdown_rows():
    rows = transport.breakdown([4096], seconds=0.01, rounds=1)
    assert {r["stage"] for r in rows} >= {"raw pyzmq send+recv", "encode", "decode (+validation)"}
    for row in rows:
        _has(row, "size_bytes", "stage", "us_per_msg")


def test_pipeline_rows(tmp_path):
    rows = pipeline.bench_pipeline([2], [2.0], ["dni"], steps=4, min_seconds=0.5, out=tmp_path)
    assert [r["mode"] for r in rows] == ["backprop", "dni"]
    for row in rows:
        _has(row, "agents", "stage_ms", "mode", "steps_per_s", "ideal", "efficiency", "cpu_util")
        assert row["steps_per_s"] > 0


def test_multiscale_rows(tmp_path):
    _mnist_or_skip()
    rows = multiscale.bench_multiscale(multiscale.DEFAULT_RECIPES[:2], steps=400, overrides=MULTISCALE_TINY_NET,
                                       out=tmp_path)
    assert [r["recipe"] for r in rows] == ["multiscale-backprop", "multiscale-dni"] and rows[0]["ratio"] == 1.0
    for row in rows:
        _has(row, "ms_per_step", "cpu_ms_env", "cpu_ms_fast", "cpu_ms_slow", "floor_ratio_here", "work_ms_fast")
        assert row["ms_per_step"] > 0 and row["cpu_ms_fast"] > 0  # the sampler saw each agent's process
        assert row["cpu_ms_total"] == pytest.approx(sum(row[f"cpu_ms_{n}"] for n in ("env", "fast", "slow")))
        assert row["floor_ms_here"] >= row["floor_ms_core_each"] > 0
    assert set(multiscale.columns(rows)) <= set(rows[0]) | {"bench"}


def test_steady_rate_skips_warm_up():
    rows = [{"time": 0.0, "steps": 0}, {"time": 1.0, "steps": 1}, {"time": 2.0, "steps": 11},
            {"time": 3.0, "steps": 21}]
    assert steady_rate(rows, warm_frac=0.3) == pytest.approx(10.0)


def test_compute_splits_cpu_per_batch_by_process(tmp_path):
    """Over the head's steady span: s1 used 0.1 CPU s and head 0.05 per second at 10 batches/s."""
    from runs.bench.runner import RunResult, Sampler

    sampler = Sampler(tmp_path)
    sampler.samples = [(float(t), {"s1": (0.0, 0.1 * t), "head": (0.0, 0.05 * t), "supervisor": (0.0, 9.0 * t)})
                       for t in range(11)]
    head = [{"time": float(t), "steps": 10 * t} for t in range(11)]
    m = compute._measure(RunResult(tmp_path, {}, sampler, {"head": head}))
    assert m.rate == pytest.approx(10.0)
    assert m.cpu_ms == pytest.approx({"head": 5.0, "s1": 10.0})  # the supervisor (the bench) is not a node


def test_split_fcn_shapes():
    agents, edges, stacks = split_fcn([1, 3])
    assert [a["name"] for a in agents] == ["s1", "head"]
    assert [len(stacks[a["name"]]) for a in agents] == [1, 3]
    assert edges[0] == {"from": "env", "to": "s1"} and edges[-1] == {"from": "s1", "to": "head"}
    one, _, stack = split_fcn([4])
    assert one[0]["module"] == {"type": "head", "in": 784, "classes": 10} and len(stack["head"]) == 4


def test_stacked_agents_train_inproc(tmp_path):
    """The compute and fused benchmarks' recipes run (in one process, tiny data) and report rows."""
    _mnist_or_skip()
    extra = ["env.kwargs.limit=1024", 'env.eval={split="test", limit=256}', "run.metrics_every=2"]
    for groups in ([1, 3], [4]):
        recipe, stacks = compute.mnist_recipe("t", 12, "cpu", "cdni", groups, launcher="inproc", extra=extra)
        res = run_recipe(recipe, tmp_path / f"g{len(groups)}", stacks)
        assert res.rate("head") > 0
        peaks = memory.peak_rows("t", res)
        assert peaks and all("ratio" in r and "peak_rss_mb" in r for r in peaks)


def test_plain_loop_rate():
    _mnist_or_skip()
    assert fused.plain_loop(0.2, threads=1, warmup_s=0.05) > 0


def test_bench_rejects_a_device_or_recipe_it_cannot_run_before_starting() -> None:
    from click.testing import CliRunner

    from runs.cli import main

    for args in (["bench", "compute", "--device", "cuda:99"], ["bench", "fused", "--device", "gpu"],
                 ["bench", "multiscale", "--steps", "10", "--set", 'levels.slow.device="cuda:99"']):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "device" in result.output, args  # a usage error, no traceback
