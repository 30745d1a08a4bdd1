"""An agent that owns several layers: the benchmarks split one network over fewer agents than layers.

Recipes give one module per agent; to compare "the 4-layer FCN in 2 agents" or "in 1 agent" with the
same network elsewhere, ``StackAgent`` replaces its module by a stack of recipe module tables. The
agent's recipe ``module`` stays the stack's first (stage) or last (head) layer with the same output
shape, so the graph's shape inference and head detection hold unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from agents import FeedForwardAgent, build_module

FACTORY = "runs.bench.stacks:StackAgent"


def build_stack(layers: Sequence[dict[str, Any]]) -> nn.Sequential:
    """The network as a user would build it: the same blocks, in order."""
    return nn.Sequential(*(build_module(dict(layer)) for layer in layers))


class StackAgent(FeedForwardAgent):
    """A FeedForwardAgent whose module is ``build_stack(layers)``."""

    def __init__(self, *args: Any, layers: Sequence[dict[str, Any]] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.layers = [dict(layer) for layer in layers]

    def start(self, rt) -> None:  # noqa: ANN001 - NodeRuntime
        super().start(rt)
        if self.layers:
            torch.manual_seed(self.seed)
            self.module = build_stack(self.layers).to(self.device)
            self.make_optimizer()


def fcn_layers(depth: int = 4, hidden: int = 256, inputs: int = 784, classes: int = 10) -> list[dict[str, Any]]:
    """The recipe tables of the paper's FCN: ``depth - 1`` Linear-BN-ReLU layers, then the classifier."""
    layers = [{"type": "linear", "in": inputs if i == 0 else hidden, "out": hidden} for i in range(depth - 1)]
    return layers + [{"type": "head", "in": hidden, "classes": classes}]


def split_fcn(groups: Sequence[int], hidden: int = 256, inputs: int = 784, classes: int = 10
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Agents, edges and stacks for an FCN of ``sum(groups)`` layers split into ``len(groups)`` agents.

    ``split_fcn([2, 2])`` is the 4-layer FCN as two agents of two layers each."""
    layers = fcn_layers(sum(groups), hidden, inputs, classes)
    agents, stacks, at = [], {}, 0
    for i, n in enumerate(groups):
        last = i == len(groups) - 1
        name = "head" if last else f"s{i + 1}"
        part = layers[at:at + n]
        width = inputs if at == 0 else hidden
        at += n
        # the recipe module has the stack's input and output shapes: the graph infers shapes from it
        module = {"type": "head", "in": width, "classes": classes} if last else part[0]
        agents.append({"name": name, "module": module})
        stacks[name] = part
    names = ["env"] + [a["name"] for a in agents]
    edges = [{"from": a, "to": b} for a, b in zip(names[:-1], names[1:])]
    return agents, edges, stacks
