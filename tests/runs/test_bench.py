"""Smoke tests of ``dnilab bench``: every benchmark runs at tiny sizes and its rows carry their parameters
and a ratio. No timing targets here: those are measured by the benchmarks themselves."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from runs.bench import compute, floor, fused, memory, multiscale, pipeline, speedup, transport
from runs.bench.cli import _sizes, bench
from runs.bench.envs import RandomBatches, ShapesImages
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


def test_pin_agents_gives_each_agent_its_share_and_leaves_the_env_alone():
    from agents import NodeSpec, cores_per_agent
    from runs.bench.runner import pin_agents

    specs = [NodeSpec("env", "x"), NodeSpec("l1", "x", threads=9), NodeSpec("head", "x", threads=9)]
    pin_agents(specs)
    assert specs[0].cpus == () and specs[0].threads == 1
    assert [s.cpus for s in specs[1:]] == [cores_per_agent(0, 2), cores_per_agent(1, 2)]
    assert [s.threads for s in specs[1:]] == [len(cores_per_agent(0, 2)), len(cores_per_agent(1, 2))]


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


SPEEDUP_KEYS = ("mode", "agents", "device", "time_to_target_s", "ratio", "seed", "model", "threshold", "curve")


def test_speedup_cli_rows_and_figure(tmp_path):
    """A smoke run in one process (tiny MLP, a few batches): the baseline row and a cdni row with the keys the
    issue asks for, the baseline's ratio 1, and one figure for the model and N."""
    _mnist_or_skip()
    path = tmp_path / "s.json"
    result = CliRunner().invoke(bench, [
        "speedup", "--models", "mlp", "--agents", "2", "--modes", "torch,cdni", "--steps", "6", "--eval-every", "3",
        "--width", "16", "--layers-per-agent", "1", "--data-limit", "512", "--eval-limit", "128",
        "--launcher", "inproc", "--device", "cpu", "--out", str(tmp_path / "runs"), "--json", str(path)])
    assert result.exit_code == 0, result.output
    rows = json.loads(path.read_text())
    assert [r["mode"] for r in rows] == ["torch", "cdni"]
    for row in rows:
        missing = [k for k in SPEEDUP_KEYS if k not in row]
        assert not missing, f"row lacks {missing}"
        assert row["model"] == "mlp" and row["agents"] == 2 and row["device"] == "cpu" and row["seed"] == 0
        assert row["curve"] and all(0 <= acc <= 100 for _, _, acc in row["curve"])
    base = rows[0]
    assert base["threshold"] == base["curve"][-1][2] and base["ratio"] == 1.0
    assert base["step_ms_1_thread"] > 0 and base["step_ms_all_threads"] > 0  # the conditions, recorded
    assert (tmp_path / "runs" / "speedup-mlp-n2.png").exists()


def test_speedup_time_to_target_and_run_clock(tmp_path):
    from runs.bench.runner import RunResult, Sampler

    curve = [(1.0, 10, 50.0), (2.0, 20, 80.0), (3.0, 30, 79.0)]
    assert speedup.time_to_target(curve, 80.0) == 2.0 and speedup.time_to_target(curve, 81.0) is None
    # the environment started sending at supervisor time 5.0: evaluations are timed from there
    metrics = {"env": [{"time": 6.0, "wall_s": 0.9}, {"time": 7.0, "wall_s": 2.0}],
               "eval": [{"time": 8.0, "at": 20, "test_error": 25.0}]}
    assert speedup.run_curve(RunResult(tmp_path, {}, Sampler(tmp_path), metrics)) == [(3.0, 20, 75.0)]


def test_speedup_workloads_split_into_agents_whose_recipes_check():
    """Each agent's stand-in module has its stack's shapes (the graph infers them from it), for both models."""
    import torch

    from runs.bench.stacks import build_stack
    from runs.execute import plan_recipe

    for w in (speedup.mlp_workload(3, width=8), speedup.cnn_workload(3, channels=4, train_examples=64)):
        _, graph = plan_recipe(speedup.system_recipe(w, "cdni", 0, 1.0, 5, 10, "inproc", "cpu"))
        assert w.agents == 3 and len(w.layers) == 6 + (w.model == "cnn")
        for spec, stack in zip(graph.agents, w.stacks):
            out = build_stack(stack).eval()(torch.zeros(2, *spec.in_shape))
            assert tuple(out.shape[1:]) == spec.out_shape
    assert speedup.cnn_workload(2).unlock_note and not speedup.mlp_workload(2).unlock_note


def test_speedup_rejects_unknown_modes_and_models_before_running():
    result = CliRunner().invoke(bench, ["speedup", "--modes", "torch,fast"])
    assert result.exit_code == 2 and "modes" in result.output
    result = CliRunner().invoke(bench, ["speedup", "--models", "rnn"])
    assert result.exit_code == 2 and "models" in result.output


def test_shapes_images_env():
    env = ShapesImages(batch_size=4, split="test", examples=6)
    obs, info = env.reset(seed=0)
    assert obs.shape == (4, 3, 32, 32) and info["target"].shape == (4,)
    obs, _, terminated, _, _ = env.step(None)
    assert obs.shape[0] == 2 and not terminated
    assert env.step(None)[2] is True
    train = ShapesImages(batch_size=4, examples=8)
    assert all(train.step(None)[0].shape == (4, 3, 32, 32) for _ in range(5))  # epochs wrap, full batches only


def test_floor_parts_from_a_profile(tmp_path):
    """The profile of a step is split into parts by file and function (own time, per step)."""
    import cProfile

    from interfaces import Kind, Message, encode

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(20):
        encode(Message(Kind.ACT, "a", "a->b", 1, []))
    prof.disable()
    prof.dump_stats(str(tmp_path / "p.pstats"))
    parts, top = floor.shares(tmp_path / "p.pstats", steps=20)
    assert parts.get("send: encode", 0) > 0 and top
    assert floor.part_of("/x/interfaces/wire.py", "decode") == "receive: decode + validate"
    assert floor.part_of("/x/zmq/sugar/poll.py", "poll") == "waiting (poll)"
