"""`dnilab reference-report`: settings grouped over seeds, paired against the bootstrap baseline."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from click.testing import CliRunner

from agents import ReferenceConfig
from runs.cli import main
from runs.dni_reference import compare, setting


def record(target: str, seed: int, error: float, **kw: object) -> dict:
    cfg = asdict(ReferenceConfig(target=target, seed=seed, **kw))
    layers = {str(i): {"applied_cosine": 0.1 * i} for i in (1, 2, 3)}
    probes = [{"step": 0, "layer": i, "applied_cosine": 0.1 * i} for i in (1, 2, 3)]
    return {"config": cfg, "test_error": error, "evals": [{"step": 4000, "test_error": error}],
            "layers": layers, "probes": probes}


def test_settings_name_what_differs_from_the_default_and_pair_by_seed(tmp_path: Path) -> None:
    recs = [record("bootstrap", s, e) for s, e in ((0, 7.0), (1, 7.4), (2, 6.8))]
    recs += [record("delayed", s, e, delay=4) for s, e in ((0, 2.5), (1, 2.4), (2, 2.7))]
    assert setting(recs[3]) == "delayed delay=4"
    table = compare(recs)
    assert "| bootstrap | 3 | 7.07 ± 0.18 | 7.00, 7.40, 6.80 |" in table
    assert "| delayed delay=4 | 3 | -4.53 ± 0.26 | 3/3 |" in table
    paths = []
    for i, rec in enumerate(recs):
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(rec))
    out = CliRunner().invoke(main, ["reference-report", *map(str, paths), "--plot", str(tmp_path / "p.png")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "p.png").stat().st_size > 0
