import math

import torch

from interfaces import cosine, norm_ratio, relative_l2


def test_metrics():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert math.isclose(cosine(a, 2 * a), 1.0)
    assert math.isclose(cosine(a, -a), -1.0)
    assert cosine(a, torch.zeros(2, 2)) == 0.0
    assert math.isclose(norm_ratio(2 * a, a), 2.0)
    assert norm_ratio(torch.zeros(2), torch.zeros(2)) == 1.0
    assert math.isclose(relative_l2(1.1 * a, a), 0.1, rel_tol=1e-6)
