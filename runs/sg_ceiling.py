"""``dnilab probe``: the synthetic gradient's ceiling on a finished char-LM run (see agents.boundary_probe).

Loads ``checkpoints/recurrent.pt`` (the best-validation core and readout, and M if the run was DNI), walks
the training split, and reports how well the state-blind constant, the best linear M(h), a linear M(h, c)
and a small MLP on h predict the gradient that arrives at a boundary, next to the run's own online M.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from agents.boundary_probe import boundary_pairs, fit_ceiling

from .checkpointed import restore_run
from .progress import RunProgress


def probe_run(
    run_dir: Path,
    boundaries: int = 2000,
    horizon: int = 4,
    gamma: float = 0.5,
    mlp_epochs: int = 10,
    progress: bool = True,
) -> dict[str, Any]:
    """Probe one run folder; the result is JSON-ready (numbers only) and says what it measured."""
    state, spec, agent, env = restore_run(run_dir)
    with RunProgress(boundaries, f"boundaries of {run_dir.name}", enabled=progress, status="",
                     unit="boundary") as bar:
        pairs = boundary_pairs(agent, env, spec.agent.window, boundaries, horizon, gamma, on_boundary=bar.advance)
    sg = agent.learner.sg_applied if spec.agent.sg_state == "h" else None  # an M on (h, c) does not read h alone
    result: dict[str, Any] = {
        "run": run_dir.name,
        "step": state["step"],
        "sg": spec.agent.sg,
        "sg_scale": spec.agent.sg_scale,
        "window": spec.agent.window,
        "boundaries": boundaries,
        "horizon_windows": horizon,
        "gamma": gamma,
        "batch": spec.agent.batch_size,
        "discounted": fit_ceiling(pairs.h, pairs.target, mlp_epochs=mlp_epochs, online=sg),
        "next_window": fit_ceiling(pairs.h, pairs.next_window, mlp_epochs=0),
        "discounted_from_hc": fit_ceiling(torch.cat([pairs.h, pairs.c], dim=-1), pairs.target, mlp_epochs=0),
    }
    return result


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: test-row cosine (norm ratio) of each predictor, one row per run."""
    head = ("| run | target | constant | linear M(h) | linear M(h, c) | MLP on h | the run's M |\n"
            "|---|---|---|---|---|---|---|")
    lines = [head]

    def cell(d: dict[str, Any] | None) -> str:
        if d is None:
            return "—"
        t = d["test"]
        return f"{t['cosine']:.4f} ({t['norm_ratio']:.3f})"

    for r in results:
        d, n, hc = r["discounted"], r["next_window"], r["discounted_from_hc"]
        lines.append(f"| {r['run']} | γ = {r['gamma']}, {r['horizon_windows']} windows | {cell(d['constant'])} | "
                     f"{cell(d['linear'])} | {cell(hc['linear'])} | {cell(d.get('mlp'))} | {cell(d.get('online'))} |")
        lines.append(f"| {r['run']} | next window only | {cell(n['constant'])} | {cell(n['linear'])} | — | — | — |")
    return "\n".join(lines)
