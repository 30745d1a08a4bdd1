import math

import torch

from interfaces import adam, agreement, cosine, norm_ratio, relative_l2


def test_metrics():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert math.isclose(cosine(a, 2 * a), 1.0)
    assert math.isclose(cosine(a, -a), -1.0)
    assert cosine(a, torch.zeros(2, 2)) == 0.0
    assert math.isclose(norm_ratio(2 * a, a), 2.0)
    assert norm_ratio(torch.zeros(2), torch.zeros(2)) == 1.0
    assert math.isclose(relative_l2(1.1 * a, a), 0.1, rel_tol=1e-6)


def test_agreement_matches_the_float64_definitions():
    torch.manual_seed(0)
    a, b = torch.randn(8, 16), torch.randn(8, 16)
    cos, ratio = agreement(a, b)
    a64, b64 = a.double().reshape(-1), b.double().reshape(-1)
    assert math.isclose(cos, float(a64 @ b64 / (a64.norm() * b64.norm())), rel_tol=1e-5)
    assert math.isclose(ratio, float(a64.norm() / b64.norm()), rel_tol=1e-5)
    assert agreement(a, torch.zeros(8, 16)) == (0.0, float("inf"))


def test_adam_is_fused_where_torch_has_it_and_honours_an_explicit_choice():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = adam([p], lr=0.1)
    assert opt.defaults["lr"] == 0.1 and isinstance(opt, torch.optim.Adam)
    assert adam([p], "adamw", lr=0.1, foreach=False).defaults["fused"] in (None, False)
    p.grad = torch.ones(3)
    opt.step()
    assert torch.allclose(p.detach(), torch.full((3,), -0.1))  # Adam's first step moves by lr
