"""BackwardInterface: a synthetic gradient as a module in an ordinary single-process loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from interfaces import BackwardInterface


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _nonzero(bi: BackwardInterface) -> BackwardInterface:
    """An M that already predicts something (a fresh one outputs exactly zero)."""
    with torch.no_grad():
        for p in bi.synthesizer.parameters():
            p.normal_(0, 0.3)
    return bi


def test_the_block_gets_m_of_h_at_once_and_nothing_flows_past() -> None:
    torch.manual_seed(0)
    block, bi = nn.Linear(5, 4), _nonzero(BackwardInterface(4, context_dim=3))
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    h = block(x)
    expected = torch.autograd.grad(h, block.weight, bi.synthesizer(h.detach(), y) / 8, retain_graph=True)[0]
    out = bi(h, context=y)
    assert torch.equal(out, h) and out.requires_grad and out.grad_fn is not h.grad_fn
    assert torch.allclose(block.weight.grad, expected, atol=1e-6)  # before any loss was computed
    before = block.weight.grad.clone()
    out.sum().backward()
    assert torch.equal(block.weight.grad, before)  # the true gradient stops at the interface ...
    assert bi.sg.trained == 1 and set(bi.last_stats) == {"sg_loss", "sg_cosine", "sg_norm_ratio"}  # ... and teaches M
    assert all(p.grad is None for p in bi.synthesizer.parameters())  # a whole-model optimizer leaves M alone


def test_m_learns_the_true_gradient_and_the_previous_m_the_bootstrapped_one() -> None:
    torch.manual_seed(0)
    b1, b2 = nn.Linear(6, 5), nn.Linear(5, 4)
    bi1, bi2 = BackwardInterface(5), _nonzero(BackwardInterface(4))
    targets: list[torch.Tensor] = []
    learn = bi1.learn
    bi1.learn = lambda target, step=None: targets.append(target.clone()) or learn(target, step)  # type: ignore
    x = torch.randn(8, 6)
    h1 = bi1(b1(x))
    h2_raw = b2(h1)
    delta = torch.autograd.grad(h2_raw, h1, bi2.synthesizer(h2_raw.detach()) / 8, retain_graph=True)[0]
    bi2(h2_raw)  # its backward through b2 reaches h1: M1's target is (dh2/dh1)ᵀ M2(h2)
    assert len(targets) == 1 and torch.allclose(targets[0], delta, atol=1e-6)
    assert bi1.sg.trained == 1 and bi2.sg.trained == 0


def test_eval_and_no_grad_are_the_identity() -> None:
    block, bi = nn.Linear(3, 2), _nonzero(BackwardInterface(2))
    with torch.no_grad():
        assert bi(block(torch.randn(4, 3))).grad_fn is None
    bi.eval()
    h = block(torch.randn(4, 3))
    assert bi(h) is h and block.weight.grad is None and bi.step == 0
    assert any(k.startswith("synthesizer.") for k in bi.state_dict())


def test_a_small_network_learns_with_synthetic_gradients_only() -> None:
    """Two blocks and a head on two separable blobs: every block updates from its M alone, and it learns."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), BackwardInterface(32, lr=1e-3),
                        nn.Linear(32, 32), nn.ReLU(), BackwardInterface(32, lr=1e-3), nn.Linear(32, 2))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    w0 = net[0].weight.detach().clone()

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 2, (64,))
        return torch.randn(64, 10) + 1.5 * (2 * y[:, None] - 1), y

    for _ in range(150):
        x, y = batch()
        opt.zero_grad()  # before the forward: that is where the blocks get their gradients
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    assert net[2].sg.trained == net[5].sg.trained == 150
    assert not torch.allclose(net[0].weight, w0)  # the first block moved, on M's gradients alone
    x, y = batch()
    net.eval()
    with torch.no_grad():
        assert (net(x).argmax(1) == y).float().mean() > 0.9
