"""A one-process reference of a DNI chain: the same layers and synthesizers as the agents, in one loop,
with the true gradient at hand, so the causes of plain DNI's shortfall can be told apart.

Every hidden layer ``i`` of an FCN owns an M_i that predicts dL/dh_i and is applied at once (update unlock).
What M_i learns from is the lever (``target``):

- ``bootstrap``: the paper's target, the receiver's own synthetic gradient carried back through it,
  delta_i = J_{i+1}^T M_{i+1}(h_{i+1}) (the last layer's M sees the true dL/dh);
- ``oracle``: the true dL/dh_i at the same weights, from a diagnostic backprop pass that only M uses;
- ``delayed``: the true dL/dh_i too, but arriving ``delay`` steps per hop later, as a backward wave
  through the agents would bring it (2 x hops to the head x delay);
- ``backprop``: no M, end-to-end backprop (the baseline).

Every ``probe_every`` steps it records, per layer, the gradient the layer applied against the true one
at the same weights (cosine, norm ratio) and M's training target against the true gradient. The data are
given as arrays (``agents`` does not load data sets; ``runs`` does).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from interfaces import SyntheticGradient, agreement

from .blocks import ClassifierHead, LinearStage

Target = Literal["bootstrap", "oracle", "delayed", "backprop"]
TARGETS: tuple[str, ...] = ("bootstrap", "oracle", "delayed", "backprop")


@dataclass
class ReferenceConfig:
    """One reference run; the defaults are the DNI recipe's (runs/mnist-fcn4-dni.toml)."""

    target: Target = "bootstrap"
    depth: int = 4                       # layers as the paper counts them: depth-1 hidden + the classifier
    hidden: int = 256
    steps: int = 4000
    batch: int = 256
    lr: float = 1e-4
    sg_hidden: tuple[int, ...] = (1024, 1024)
    sg_lr: float = 1e-4
    sg_scale: float = 1.0                # multiplies the applied synthetic gradient
    sg_warmup: int = 0                   # steps over which the applied scale ramps from 0 to sg_scale
    sg_updates: int = 1                  # M's optimizer steps per target
    delay: int = 0                       # steps per hop of the delayed wave (target = "delayed")
    seed: int = 0
    eval_every: int = 500
    probe_every: int = 50

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target: expected one of {TARGETS}, got {self.target!r}")
        if self.depth < 2:
            raise ValueError(f"depth: at least 2, got {self.depth}")
        for key in ("steps", "batch", "sg_updates", "probe_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")
        for key in ("delay", "sg_warmup", "eval_every"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: must be >= 0, got {getattr(self, key)}")
        self.sg_hidden = tuple(self.sg_hidden)


@dataclass
class ReferenceResult:
    config: dict[str, Any]
    test_error: float                                   # % at the end
    evals: list[dict[str, float]] = field(default_factory=list)   # {"step", "test_error"}
    probes: list[dict[str, float]] = field(default_factory=list)  # per-layer agreement over training


class Chain(nn.Module):
    """The FCN of the recipes: depth-1 LinearStage layers and a ClassifierHead."""

    def __init__(self, n_in: int, hidden: int, depth: int, classes: int) -> None:
        super().__init__()
        widths = [n_in] + [hidden] * (depth - 1)
        self.stages = nn.ModuleList(LinearStage(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.head = ClassifierHead(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def test_error(net: Chain, x: Tensor, y: Tensor, batch: int = 1000) -> float:
    """% misclassified, eval mode (BatchNorm running statistics), no synthesizer on the path."""
    net.eval()
    wrong = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            wrong += int((net(x[i:i + batch]).argmax(1) != y[i:i + batch]).sum())
    net.train()
    return 100.0 * wrong / len(x)


def run_reference(cfg: ReferenceConfig, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                  classes: int = 10, progress: Callable[[int], None] | None = None) -> ReferenceResult:
    """Train one chain for ``cfg.steps`` batches; returns its test error and the probes."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    x_train, y_train = torch.as_tensor(np.array(train[0])), torch.as_tensor(np.array(train[1]))
    x_test, y_test = torch.as_tensor(np.array(test[0])), torch.as_tensor(np.array(test[1]))
    net = Chain(x_train.shape[1], cfg.hidden, cfg.depth, classes)
    optimizers = [torch.optim.Adam(m.parameters(), lr=cfg.lr) for m in (*net.stages, net.head)]
    n_edges = cfg.depth - 1  # edge i: stage i -> stage i+1 (the last one -> head)
    hops = [n_edges - 1 - i for i in range(n_edges)]   # hops from the receiver of edge i to the head
    lag = [2 * h * cfg.delay if cfg.target == "delayed" else 0 for h in hops]
    sgs = [] if cfg.target == "backprop" else [
        SyntheticGradient(cfg.hidden, hidden=cfg.sg_hidden, lr=cfg.sg_lr, capacity=max(lag) + 4,
                          scale=cfg.sg_scale, updates=cfg.sg_updates) for _ in range(n_edges)]
    waiting: list[deque[tuple[int, Tensor]]] = [deque() for _ in range(n_edges)]  # delayed targets in flight
    result = ReferenceResult(config=asdict(cfg), test_error=float("nan"))
    order = rng.permutation(len(x_train))
    cursor = 0
    for step in range(cfg.steps):
        if cursor + cfg.batch > len(order):
            order, cursor = rng.permutation(len(x_train)), 0
        idx = torch.as_tensor(order[cursor:cursor + cfg.batch])
        cursor += cfg.batch
        x, y = x_train[idx], y_train[idx]
        if cfg.target == "backprop":
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            for opt in optimizers:
                opt.step()
                opt.zero_grad(set_to_none=True)
        else:
            probe = step % cfg.probe_every == 0
            rows = _dni_step(net, optimizers, sgs, waiting, lag, cfg, step, x, y, probe)
            if probe:
                result.probes.extend(rows)
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
            result.evals.append({"step": step + 1, "test_error": test_error(net, x_test, y_test)})
        if progress is not None:
            progress(step + 1)
    result.test_error = test_error(net, x_test, y_test)
    result.evals.append({"step": cfg.steps, "test_error": result.test_error})
    return result


def _dni_step(net: Chain, optimizers: list[torch.optim.Optimizer], sgs: list[SyntheticGradient],
              waiting: list[deque[tuple[int, Tensor]]], lag: list[int], cfg: ReferenceConfig, step: int,
              x: Tensor, y: Tensor, probe: bool) -> list[dict[str, float]]:
    """One step of every layer on M's gradient, as the agents do it, plus M's learning from its target."""
    scale = cfg.sg_scale * (min(1.0, step / cfg.sg_warmup) if cfg.sg_warmup else 1.0)
    inputs: list[Tensor] = []   # each stage's input (requires grad past the first)
    outputs: list[Tensor] = []  # h_i
    applied: list[Tensor] = []  # the synthetic gradient each stage used, batch-mean scale
    inp = x
    for i, stage in enumerate(net.stages):
        xi = inp.detach().requires_grad_(i > 0)
        h = stage(xi)                                            # [B, hidden]
        sgs[i].scale = scale
        g = sgs[i].predict(step, h)
        h.backward(g, retain_graph=True)                         # the stage's update gradient; keeps J_i
        inputs.append(xi)
        outputs.append(h)
        applied.append(g)
        inp = h
    xh = inp.detach().requires_grad_(True)
    F.cross_entropy(net.head(xh), y).backward()
    # the targets of M_0..M_{n-1}: bootstrapped (xi.grad, from the receiver's own M) or true (a wave of
    # VJPs from the head's true gradient through the same graphs: the diagnostic pass only M uses)
    boot = [xi.grad for xi in inputs[1:]] + [xh.grad]
    need_true = cfg.target in ("oracle", "delayed") or probe
    true: list[Tensor] = [xh.grad] * len(outputs)
    if need_true:
        for i in range(len(outputs) - 1, 0, -1):
            true[i - 1] = torch.autograd.grad(outputs[i], inputs[i], true[i], retain_graph=True)[0]
    for opt in optimizers:
        opt.step()
        opt.zero_grad(set_to_none=True)
    rows = []
    if probe:
        for i in range(len(outputs)):
            cos, ratio = agreement(applied[i], true[i])
            tcos, tratio = agreement(boot[i] if cfg.target == "bootstrap" else true[i], true[i])
            rows.append({"step": step, "layer": i + 1, "applied_cosine": cos, "applied_norm_ratio": ratio,
                         "target_cosine": tcos, "target_norm_ratio": tratio})
    for i, sg in enumerate(sgs):
        target = boot[i] if cfg.target == "bootstrap" else true[i]
        waiting[i].append((step, target.detach()))
        while waiting[i] and waiting[i][0][0] <= step - lag[i]:
            s, t = waiting[i].popleft()
            stats = sg.learn(s, t)
            if probe and stats and s == step:
                rows[i]["sg_cosine"] = stats["sg_cosine"]
    return rows


def summarize_probes(probes: list[dict[str, float]], last_fraction: float = 0.2) -> dict[int, dict[str, float]]:
    """Per layer, the mean of every probed quantity over the last ``last_fraction`` of training."""
    if not probes:
        return {}
    last = max(p["step"] for p in probes)
    start = last * (1 - last_fraction)
    out: dict[int, dict[str, float]] = {}
    for layer in sorted({int(p["layer"]) for p in probes}):
        rows = [p for p in probes if p["layer"] == layer and p["step"] >= start]
        keys = [k for k in rows[0] if k not in ("step", "layer")]
        out[layer] = {k: float(np.mean([r[k] for r in rows if k in r and math.isfinite(r[k])])) for k in keys}
    return out
