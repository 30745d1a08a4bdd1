"""Device choice and placement: the records show where each agent's parameters really were.

The CUDA test runs only where a GPU is visible (skipped here and in CI); it is the check run on a lent GPU machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from agents import cores_per_agent, pick_device, placement
from runs import execute, prepare
from tests.runs.conftest import MULTISCALE_TINY_NET, TINY

RUNS = Path(__file__).resolve().parents[2] / "runs"
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_pick_device_keeps_an_explicit_choice_and_spreads_auto() -> None:
    assert pick_device(3, "cpu") == "cpu" and pick_device(0, "cuda:1", here=False) == "cuda:1"
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert pick_device(5, "auto") == (f"cuda:{5 % n}" if n else "cpu")


def test_pick_device_rejects_what_this_machine_cannot_give() -> None:
    with pytest.raises(ValueError, match="not a device"):
        pick_device(0, "gpu")
    with pytest.raises(ValueError, match="CUDA device"):
        pick_device(0, "cuda:99")
    assert pick_device(0, "cuda:99", here=False) == "cuda:99"  # placed elsewhere (Ray): spelling only
    if not torch.backends.mps.is_available():
        with pytest.raises(ValueError, match="no usable mps backend"):
            pick_device(0, "mps")


def test_placement_reads_the_parameters() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    assert placement(nn.Linear(3, 2)) == {"placed": "cpu", "cpus": cpus}
    assert placement(nn.ReLU()) == {"placed": "cpu", "cpus": cpus}  # nothing to place: CPU, no GPU memory claimed


def test_cores_per_agent_are_disjoint_shares_or_round_robin() -> None:
    cores = sorted(os.sched_getaffinity(0))
    for n in range(1, 2 * len(cores) + 1):
        shares = [cores_per_agent(i, n) for i in range(n)]
        assert all(shares) and all(set(s) <= set(cores) for s in shares)
        if n <= len(cores):  # an equal, disjoint share each
            assert len({c for s in shares for c in s}) == sum(map(len, shares)) == n * (len(cores) // n)
        else:  # more agents than cores: one core each, in turn
            assert [s[0] for s in shares] == [cores[i % len(cores)] for i in range(n)]


@CUDA
@pytest.mark.parametrize("name", ["mnist-fcn4-cdni.toml", "mnist-fcn4-backprop.toml"])
def test_feedforward_agents_place_themselves_on_cuda(tmp_path: Path, name: str) -> None:
    recipe, plan = prepare(RUNS / name, [*TINY, "run.device=auto"])  # separate processes, as users run them
    _, summary = execute(recipe, plan, out=tmp_path / "run", progress=False)
    assert summary["status"] == "completed", summary.get("error")
    agents = {n: a for n, a in summary["agents"].items() if n != "env"}
    assert len(agents) == len(plan.agents)
    for agent_name, stats in agents.items():
        assert stats["placed"].startswith("cuda"), agent_name
        assert stats["cuda_peak_mb"] > 0, agent_name  # it really allocated on the GPU in its own process


@CUDA
def test_ticking_agents_place_themselves_on_cuda(tmp_path: Path) -> None:
    recipe, plan = prepare(RUNS / "multiscale-cdni.toml", [*MULTISCALE_TINY_NET, "run.steps=48", "run.device=auto"])
    _, summary = execute(recipe, plan, out=tmp_path / "run", progress=False)
    assert summary["status"] == "completed", summary.get("error")
    for level in ("fast", "slow"):
        assert summary["agents"][level]["placed"].startswith("cuda"), level
        assert summary["agents"][level]["cuda_peak_mb"] > 0, level


def test_the_recurrent_agent_reports_its_placement(tmp_path: Path) -> None:
    recipe, plan = prepare(RUNS / "copy-t3-dni.toml", ["run.steps=10", "run.log_every=5", "run.launcher=inproc",
                                                       "agent.hidden=8", "agent.batch_size=4"])
    _, summary = execute(recipe, plan, out=tmp_path / "run", progress=False)
    assert summary["status"] == "completed", summary.get("error")
    assert summary["agents"]["recurrent"]["placed"] == pick_device(0, "auto")  # cpu here, cuda:0 with a GPU
