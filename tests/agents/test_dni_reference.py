"""The one-process DNI reference: its targets are what they claim to be, on tiny random data."""

from __future__ import annotations

import numpy as np
import pytest

from agents import ReferenceConfig, run_reference, summarize_probes


def data(n: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (rng.normal(size=(n, 12)) + y[:, None]).astype(np.float32)
    return x, y.astype(np.int64)


def run(target: str, **kw: object) -> dict:
    cfg = ReferenceConfig(target=target, depth=4, hidden=16, steps=12, batch=32, sg_hidden=(32,), eval_every=6,
                          probe_every=1, **kw)
    result = run_reference(cfg, data(), data(64, seed=1), classes=3)
    return {"result": result, "layers": summarize_probes(result.probes, last_fraction=1.0)}


def test_the_oracle_trains_m_on_the_true_gradient_and_bootstrap_only_the_last() -> None:
    oracle = run("oracle")["layers"]
    assert all(row["target_cosine"] == pytest.approx(1.0) for row in oracle.values())
    boot = run("bootstrap")["layers"]
    assert boot[3]["target_cosine"] == pytest.approx(1.0)   # the head's gradient is true
    assert boot[1]["target_cosine"] < 0.99                     # further down, another M's guess


def test_a_delayed_target_arrives_two_hops_per_agent_late() -> None:
    probes = run("delayed", delay=2)["result"].probes
    learned = {layer: [p["step"] for p in probes if p["layer"] == layer and "sg_cosine" in p] for layer in (1, 2, 3)}
    assert learned[3] == list(range(12))  # next to the head: no lag
    assert learned[2] == []               # lag 4 steps: M_2 never learns from the step it was probed at


def test_backprop_and_results_are_recorded() -> None:
    out = run("backprop")["result"]
    assert out.probes == [] and [e["step"] for e in out.evals] == [6, 12]
    assert 0.0 <= out.test_error <= 100.0


def test_bad_settings_name_the_key() -> None:
    with pytest.raises(ValueError, match="target"):
        ReferenceConfig(target="true")
    with pytest.raises(ValueError, match="delay"):
        ReferenceConfig(delay=-1)
