"""Complete unlock: agents that never wait, bounded memory under a lagging agent, composition without synthesizers."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tests.runs.conftest import composed_error, composed_loss, dnilab, sets, summary

UNLOCK = "runs/mnist-fcn4-unlock-cdni.toml"


def test_a_slowed_agent_does_not_block_the_others(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # l1 stands for a device-bound stage (it sleeps 10 ms per pass), so on a 2-core machine the CPU goes to the others
    out = dnilab("run", UNLOCK, *sets("run.steps=120", "run.eval_every=0", "run.capacity=8",
                                      "overrides.l1.stage_ms=10", "overrides.l2.slowdown=12.0"),
                 "--out", str(run_dir), "--quiet")
    assert out.returncode == 0, out.stderr
    agents = summary(run_dir)["agents"]
    rows = {name: [json.loads(x) for x in (run_dir / "metrics" / f"{name}.jsonl").read_text().splitlines()]
            for name in ("l1", "l2", "l3", "head")}
    # free-running: the budget is each agent's own updates, so every agent, the slow one too, did all of them
    for name in rows:
        assert agents[name]["updates"] == 120
        assert agents[name]["trained_real"] + agents[name]["trained_synthetic"] == 120
    # ... and nobody waited for the slow one: when the head had done its budget, l2 had not done 60 % of its own
    head_done = min(r["time"] for r in rows["head"] if r["steps"] == 120)
    assert max((r["steps"] for r in rows["l2"] if r["time"] <= head_done), default=0) < 0.6 * 120
    # bounded memory: every store stayed within its capacity; what did not fit was dropped and counted
    for name in rows:
        assert max(r["stored"] for r in rows[name]) <= 3 * 8
    assert agents["l2"]["skipped"] > 0


def test_composition_uses_no_synthesizer(tmp_path: Path) -> None:
    """Every synthesizer is NaN-filled before the final evaluation: the composed error must not change."""
    run_dir = tmp_path / "run"
    out = dnilab("run", UNLOCK, *sets("run.steps=60", 'defaults.agent.factory="tests.agents.helpers:CorruptingAgent"'),
                 "--out", str(run_dir), "--quiet")
    assert out.returncode == 0, out.stderr
    result = summary(run_dir)["eval"]
    reported = result["test_error"]
    assert math.isfinite(result["test_loss"])  # NaN never reached the evaluation path
    comp = dnilab("compose", str(run_dir))  # the same modules, composed from checkpoints alone
    assert comp.returncode == 0, comp.stderr
    # the very network evaluated: the loss does not flip on near-ties (this tiny run's logits are almost
    # uniform, so the error can move by points with the thread count alone)
    assert abs(composed_loss(comp.stdout) - result["test_loss"]) <= 1e-4
    assert abs(composed_error(comp.stdout) - reported) <= 10.0


def test_late_real_trains_on_real_activations_that_arrive_after_their_step(tmp_path: Path) -> None:
    """With ``late_real``, a head that ran ahead on I(x) still trains on the real h when it arrives."""
    run_dir = tmp_path / "run"
    out = dnilab("run", UNLOCK, *sets("run.steps=120", "run.eval_every=0", "run.capacity=16",
                                      "defaults.edge.late_real=true", "overrides.l3.slowdown=4.0"),
                 "--out", str(run_dir), "--quiet")
    assert out.returncode == 0, out.stderr
    agents = summary(run_dir)["agents"]
    for name in ("l1", "l2", "l3", "head"):
        assert agents[name]["updates"] == 120  # late steps count against the agent's own budget
        assert agents[name]["trained_real"] + agents[name]["trained_synthetic"] == 120
    head = agents["head"]
    assert head["trained_late"] > 0  # l3 is 4x slower: its activations reach the head after I(x) was used
    assert head["trained_late"] <= head["trained_real"]
