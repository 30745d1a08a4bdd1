"""DNI in one ordinary PyTorch loop: a 3-layer MLP whose hidden blocks learn from synthetic gradients (cDNI).

No processes, no recipe: ``interfaces.BackwardInterface`` after each hidden block hands the block M(h, y) as
its gradient during the forward, and learns M from the gradient that later reaches h. Trains on MNIST when it
is cached (``dnilab data mnist``), else on a synthetic 10-class problem of the same shape.

    python examples/dni_plain_pytorch.py [--steps 600] [--synthetic]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from environments import data_dir, load_mnist
from interfaces import BackwardInterface


class DniMLP(nn.Module):
    """784 -> hidden -> hidden -> 10; a conditioned synthetic gradient after each hidden block."""

    def __init__(self, hidden: int = 256, classes: int = 10) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Linear(784, hidden), nn.BatchNorm1d(hidden), nn.ReLU())
        self.bi1 = BackwardInterface(hidden, context_dim=classes, lr=1e-3)  # M1(h1, y), linear
        self.block2 = nn.Sequential(nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU())
        self.bi2 = BackwardInterface(hidden, context_dim=classes, lr=1e-3)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.bi1(self.block1(x), context=y)  # block1's gradient is complete here: M1(h1, y)
        h = self.bi2(self.block2(h), context=y)  # block2's from M2; M1 learns from the δ reaching h1
        return self.head(h)  # in eval mode the interfaces are the identity: the composed network


def load(synthetic: bool, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train x [N, 784], train y [N], test x, test y): MNIST if cached, else 10 noisy prototypes in 784-D."""
    if not synthetic and (data_dir() / "mnist.npz").exists():
        splits = load_mnist()
        (xtr, ytr), (xte, yte) = splits["train"], splits["test"]
        return torch.from_numpy(np.array(xtr)), torch.from_numpy(np.array(ytr)), \
            torch.from_numpy(np.array(xte)), torch.from_numpy(np.array(yte))
    g = torch.Generator().manual_seed(seed)
    prototypes = 0.1 * torch.randn(10, 784, generator=g)  # close enough together that it takes learning

    def draw(n: int) -> tuple[Tensor, Tensor]:
        y = torch.randint(0, 10, (n,), generator=g)
        return prototypes[y] + torch.randn(n, 784, generator=g), y

    return *draw(20_000), *draw(2_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--synthetic", action="store_true", help="synthetic data even if MNIST is cached")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)  # small matrices: more threads only contend
    xtr, ytr, xte, yte = load(args.synthetic)
    net = DniMLP()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)  # M's parameters get no .grad: they keep their own Adam
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(xtr), (args.batch_size,))
        x, y = xtr[idx], ytr[idx]
        opt.zero_grad()  # before the forward: the blocks receive their gradients during it
        loss = F.cross_entropy(net(x, y), y)
        loss.backward()  # the head's gradient; M2 learns from the true dL/dh2
        opt.step()
        if step % max(1, args.steps // 4) == 0:
            print(f"step {step:5d}  loss {loss.item():.3f}  "
                  f"M1 cosine {net.bi1.last_stats['sg_cosine']:+.2f}  M2 cosine {net.bi2.last_stats['sg_cosine']:+.2f}")
    net.eval()
    with torch.no_grad():
        error = (net(xte).argmax(1) != yte).float().mean().item() * 100
    print(f"test error {error:.2f} %")


if __name__ == "__main__":
    main()
