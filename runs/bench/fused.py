"""``bench fused``: the MNIST FCN as one dnilab agent (plain backprop, no agent edges) against the plain
PyTorch training loop a user would write instead: the same layers, optimizer, batch size and data.

The agent gets the thread share dnilab gives it (cores // agents: all of them, for one agent); the plain loop
runs with torch's default threads (what a user gets) and, where that differs, with the agent's share too (the
framework's own cost).
Loops and the dnilab run are interleaved (loop, dnilab, loop) and the loops averaged.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from agents import pick_device, threads_per_agent
from environments import load_mnist

from .compute import BATCH, calibrate, mnist_recipe
from .runner import run_recipe
from .stacks import build_stack, fcn_layers
from .table import Row

TARGET = 0.9


def plain_loop(seconds: float, threads: int | None = None, device: str = "cpu", warmup_s: float = 1.0,
               data: tuple[torch.Tensor, torch.Tensor] | None = None) -> float:
    """Samples/s of the textbook loop: shuffle, slice a batch, forward, loss, backward, Adam step."""
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        if data is None:
            x_np, y_np = load_mnist()["train"]
            data = torch.from_numpy(x_np.copy()), torch.from_numpy(y_np.copy())
        x, y = data[0].to(device), data[1].to(device)
        torch.manual_seed(0)
        model = build_stack(fcn_layers(4)).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        n = len(x) // BATCH
        samples, t0, start = 0, None, time.perf_counter()
        while True:
            order = torch.randperm(len(x), device=device)
            for i in range(n):
                idx = order[i * BATCH:(i + 1) * BATCH]
                loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                now = time.perf_counter()
                if t0 is None:
                    if now - start >= warmup_s:
                        if device.startswith("cuda"):
                            torch.cuda.synchronize()
                        t0 = time.perf_counter()
                    continue
                samples += BATCH
                if now - t0 >= seconds:
                    if device.startswith("cuda"):
                        torch.cuda.synchronize()
                    return samples / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)


def bench_fused(seconds: float = 8.0, device: str = "auto", out: Path | None = None,
                rate: float | None = None) -> list[Row]:
    out = Path(out or tempfile.mkdtemp(prefix="dnilab-bench-fused-"))
    device = pick_device(0, device)
    x_np, y_np = load_mnist()["train"]
    data = torch.from_numpy(x_np.copy()), torch.from_numpy(y_np.copy())
    agent_threads = threads_per_agent(1)
    default_threads = torch.get_num_threads()
    cases = [("default", default_threads, TARGET)]
    if agent_threads != default_threads:
        cases.append(("agent", agent_threads, None))
    loops: dict[str, list[float]] = {key: [] for key, _, _ in cases}

    def run_loops() -> None:
        for key, threads, _ in cases:
            loops[key].append(plain_loop(seconds / 2, threads, device, data=data))

    run_loops()
    steps = max(60, int(seconds * (rate or calibrate())))
    recipe, stacks = mnist_recipe("fcn4-one-agent", steps, device, "backprop", [4])
    res = run_recipe(recipe, out / "fused", stacks)
    run_loops()
    dnilab = res.rate("head") * BATCH
    rows = []
    for key, threads, target in cases:
        base = sum(loops[key]) / len(loops[key])
        ratio = dnilab / base if base else 0.0
        rows.append({"case": "FCN4, one dnilab agent vs plain PyTorch loop", "device": device,
                     "loop_threads": threads, "agent_threads": agent_threads, "samples_per_s": dnilab,
                     "baseline_samples_per_s": base, "ratio": ratio, "target": target,
                     "met": None if target is None else ratio >= target})
    return rows


COLUMNS = ("case", "device", "loop_threads", "agent_threads", "samples_per_s", "baseline_samples_per_s", "ratio",
           "target", "met")
