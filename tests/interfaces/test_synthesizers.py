import pytest
import torch
import torch.nn.functional as F

from interfaces import Synthesizer, SyntheticGradient, SyntheticInput


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: intra-op threads only add contention (and stalls on a loaded machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_shapes_and_zero_init():
    torch.manual_seed(0)
    x = torch.randn(8, 20)
    for m in (Synthesizer((20,)), Synthesizer((20,), hidden=(32, 32)), Synthesizer((20,), (5,), (16,), 3)):
        y = m(x, torch.eye(3)[torch.arange(8) % 3] if m.context_dim else None)
        assert y.shape == (8, *m.out_shape) and torch.count_nonzero(y) == 0
    conv = Synthesizer((4, 6, 6), hidden=(8,), context_dim=10)
    y = conv(torch.randn(2, 4, 6, 6), torch.tensor([1, 7]))  # int labels become one-hot
    assert y.shape == (2, 4, 6, 6) and torch.count_nonzero(y) == 0
    with pytest.raises(ValueError):
        Synthesizer((4, 6, 6), (4, 3, 3))
    with pytest.raises(ValueError, match="context"):
        Synthesizer((3,), context_dim=2)(torch.randn(2, 3))


def test_predict_is_zero_at_start_and_detached():
    sg = SyntheticGradient(16, hidden=(32,))
    h = torch.randn(8, 16, requires_grad=True)
    g = sg.predict(0, h * 2)
    assert g.shape == h.shape and not g.requires_grad and torch.equal(g, torch.zeros_like(g))
    assert all(p.grad is None for p in sg.module.parameters())
    assert sg.predict(1, torch.randn(1, 16)).shape == (1, 16)  # batch of one works too


def test_learns_gradient_of_known_function():
    """L = mean_b 0.5 ||A h_b||^2 has dL/dh = A^T A h / B; M must learn it at per-sample scale."""
    torch.manual_seed(0)
    d, batch = 16, 32
    a = torch.randn(d, d) / d**0.5
    sg = SyntheticGradient(d, lr=1e-2, capacity=4)
    metrics = {}
    for step in range(400):
        h = torch.randn(batch, d, requires_grad=True)
        g = sg.predict(step, h)
        loss = 0.5 * (h @ a.T).pow(2).sum(1).mean()
        (true_grad,) = torch.autograd.grad(loss, h)
        metrics = sg.learn(step, true_grad)
    assert metrics["sg_cosine"] > 0.95 and 0.8 < metrics["sg_norm_ratio"] < 1.2
    h = torch.randn(batch, d)
    g = sg.predict(10_000, h)
    assert F.cosine_similarity(g.flatten(), (h @ a.T @ a / batch).flatten(), dim=0) > 0.95
    assert sg.trained == 400 and sg.unmatched == 0 and sg.dropped == 0 and len(sg.buffer) == 1


def test_scale_multiplies_applied_gradient():
    torch.manual_seed(0)
    sg = SyntheticGradient(4, lr=1e-1)
    for step in range(50):
        h = torch.randn(8, 4)
        sg.predict(step, h)
        sg.learn(step, h / 8)
    h = torch.randn(8, 4)
    g1 = sg.predict(100, h)
    sg.scale = 0.5
    assert torch.allclose(sg.predict(101, h), 0.5 * g1)


def test_context_conditioning_matters():
    """The target depends only on the label, so only a cDNI synthesizer can learn it."""
    torch.manual_seed(0)
    d, k, batch = 8, 4, 32
    w = torch.randn(k, d)
    plain = SyntheticGradient(d, hidden=(32,), lr=1e-2)
    cond = SyntheticGradient(d, hidden=(32,), context_dim=k, lr=1e-2)
    for step in range(300):
        h = torch.randn(batch, d)
        y = torch.randint(0, k, (batch,))
        target = w[y] / batch  # batch-mean scale
        plain.predict(step, h)
        cond.predict(step, h, F.one_hot(y, k).float())
        m_plain, m_cond = plain.learn(step, target), cond.learn(step, target)
    assert m_cond["sg_cosine"] > 0.95
    assert m_plain["sg_cosine"] < 0.6


def test_buffer_bounds_memory_and_counts_unmatched():
    sg = SyntheticGradient(4, capacity=8)
    for step in range(100):
        sg.predict(step, torch.randn(2, 4))
    assert len(sg.buffer) == 8 and sg.dropped == 92
    assert sg.learn(3, torch.zeros(2, 4)) is None and sg.unmatched == 1
    assert sg.learn(99, torch.zeros(2, 4)) is not None and sg.trained == 1
    si = SyntheticInput(3, 4, capacity=2)
    for step in range(5):
        si.predict(step, torch.randn(2, 3))
    assert si.dropped == 3 and si.learn(0, torch.zeros(2, 4)) is None and si.unmatched == 1


def test_synthetic_input_learns_linear_map():
    torch.manual_seed(0)
    w = torch.randn(10, 6)
    si = SyntheticInput(10, 6, lr=3e-2)
    for step in range(400):
        x = torch.randn(32, 10)
        h0 = si.predict(step, x)
        metrics = si.learn(step, x @ w)
    assert step == 399 and h0.shape == (32, 6) and not h0.requires_grad
    assert metrics["si_rel_error"] < 0.1
    x = torch.randn(64, 10)
    assert torch.linalg.norm(si.predict(1000, x) - x @ w) / torch.linalg.norm(x @ w) < 0.1


def test_conv_synthetic_gradient_runs():
    sg = SyntheticGradient((3, 5, 5), hidden=(4,), context_dim=2, lr=1e-2)
    h = torch.randn(4, 3, 5, 5)
    assert sg.predict(0, h, torch.tensor([0, 1, 1, 0])).shape == h.shape
    m = sg.learn(0, torch.randn_like(h))
    assert set(m) == {"sg_loss", "sg_cosine", "sg_norm_ratio"}
