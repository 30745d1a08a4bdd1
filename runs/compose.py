"""Compose a finished run's agents into one network, from their checkpoints alone.

The agents trained apart, each with its own optimizer and interfaces; this puts their modules in one
``nn.Sequential`` (a chain) or a ``ComposedGraph`` (fan-in: every agent on the merge of its in-edges' real
inputs), with no synthesizer anywhere, and evaluates it, which is what "they compose into one working
system" means, checked independently of the runtime's own evaluation.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agents import ENV, Graph, build_module, checkpoint_path, merge_inputs
from environments import make

from .config import FeedForwardRecipe, check, resolved
from .recipe import RecipeError
from .systems import build_graph


class ComposedGraph(nn.Module):
    """Agents' modules in the graph's order, each on the merge of its in-edges' outputs (an edge from the
    environment with a ``part`` reads ``x[:, part]``); the output is the head's."""

    def __init__(self, graph: Graph, modules: dict[str, nn.Module]) -> None:
        super().__init__()
        self.graph = graph
        self.order = graph.order()
        self.agents = nn.ModuleDict(modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: dict[str, torch.Tensor] = {}
        for name in self.order:
            parts = [out[e.sender] if e.sender != ENV else x if e.part is None else x[:, e.part]
                     for e in self.graph.in_edges(name)]
            out[name] = self.agents[name](merge_inputs(self.graph.agent(name).merge, parts))
        return out[self.graph.heads()[0]]


def composed_network(run_dir: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The agents' modules, loaded from ``checkpoints/<agent>.pt``, as one network (``nn.Sequential`` for a
    chain, ``ComposedGraph`` with fan-in); returns (network, recipe)."""
    run_dir = Path(run_dir)
    recipe = tomllib.loads((run_dir / "recipe.toml").read_text())
    kind = recipe.get("run", {}).get("kind", "feedforward")
    if kind != "feedforward":
        raise RecipeError(f"run.kind: composition needs a feed-forward run, got {kind!r}")
    recipe = resolved(check(FeedForwardRecipe, recipe))
    graph = build_graph(recipe)
    layers: dict[str, nn.Module] = {}
    for name in graph.order():
        path = checkpoint_path(run_dir, name)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no checkpoint for agent {name!r}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        module = build_module(graph.agent(name).module)
        module.load_state_dict(state["module"])
        layers[name] = module
    chain = all(len(graph.in_edges(a.name)) == 1 for a in graph.agents) and not any(e.part is not None
                                                                                   for e in graph.edges)
    if chain:
        return nn.Sequential(*layers.values()).eval(), recipe
    return ComposedGraph(graph, layers).eval(), recipe


def evaluate_composed(run_dir: str | Path) -> dict[str, float]:
    """Test error (%) and mean cross-entropy of the composed network on the run's evaluation split (the
    loss, unlike the error, does not flip on near-ties, so it shows whether two evaluations saw one network)."""
    network, recipe = composed_network(run_dir)
    env_cfg = recipe["env"]
    env = make(env_cfg["id"], **{**env_cfg["kwargs"], **env_cfg["eval"]})
    wrong = total = 0
    loss = 0.0
    obs, info = env.reset(seed=recipe["run"]["seed"])
    with torch.no_grad():
        while True:
            logits = network(torch.as_tensor(np.asarray(obs)).float())
            y = torch.as_tensor(np.asarray(info["target"])).long()
            wrong += int((logits.argmax(1) != y).sum())
            loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
            total += len(y)
            obs, _, terminated, truncated, info = env.step(None)
            if terminated or truncated:
                break
    return {"test_error": 100.0 * wrong / max(total, 1), "test_loss": loss / max(total, 1), "examples": total}
