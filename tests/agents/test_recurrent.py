"""The recurrent DNI agent: bootstrapped synthetic-gradient targets, config checks, curriculum, tiny runs."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import environments  # noqa: F401  (registers dnilab/Copy-v0 etc.)
from agents.curriculum import Curriculum, CurriculumConfig
from agents.recurrent import run_recurrent
from agents.recurrent_config import RecurrentConfig, parse_recipe, validate_recurrent
from agents.tbptt import LSTMCore, TBPTTLearner, copy_loss
from environments.copy import bits_per_sequence

torch.set_num_threads(1)


class LinearRNN(nn.Module):
    """h_t = h_{t-1} W^T + x_t U^T; state = (h,). Small enough to backprop by hand."""

    def __init__(self, n_in: int, hidden: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(hidden, hidden, dtype=torch.float64) * 0.5)
        self.U = nn.Parameter(torch.randn(hidden, n_in, dtype=torch.float64))
        self.hidden = hidden

    def init_state(self, batch: int, device: object = "cpu") -> tuple[Tensor]:
        return (torch.zeros(batch, self.hidden, dtype=self.W.dtype),)

    def forward(self, x: Tensor, state: tuple[Tensor]) -> tuple[Tensor, tuple[Tensor]]:
        h, outs = state[0], []
        for t in range(x.shape[0]):
            h = h @ self.W.T + x[t] @ self.U.T
            outs.append(h)
        return torch.stack(outs), (h,)


def sq_loss(logits: Tensor, target: Tensor, mask: Tensor, norm: float) -> Tensor:
    return 0.5 * (((logits - target) ** 2).sum(-1) * mask).sum() / norm


def _setup(sg_scale: float = 0.5):
    torch.manual_seed(0)
    b, n_in, hid, n_out, t = 3, 2, 4, 2, 3
    core = LinearRNN(n_in, hid)
    readout = nn.Linear(hid, n_out, bias=False).double()
    cfg = RecurrentConfig(hidden=hid, window=t, sg="dni", lr=0.0, sg_lr=0.0, sg_scale=sg_scale, clip=0.0)
    learner = TBPTTLearner(core, readout, sq_loss, cfg, state_size=hid, out_size=hid)
    learner.sg.double()
    with torch.no_grad():  # a non-zero M, so the carried-back synthetic gradient matters
        for p in learner.sg.parameters():
            p.copy_(torch.randn_like(p))
    x = torch.randn(3 * t, b, n_in, dtype=torch.float64)
    y = torch.randn(3 * t, b, n_out, dtype=torch.float64)
    mask = (torch.rand(3 * t, b) > 0.3).double()
    return learner, core, readout, x, y, mask, b, t


def test_bootstrapped_target_matches_hand_backprop_on_linear_rnn() -> None:
    learner, core, readout, x, y, mask, b, t = _setup(sg_scale=0.5)
    learner.start_episode(b)
    targets = []
    for k in range(3):
        sl = slice(k * t, (k + 1) * t)
        learner.train_window(x[sl], y[sl], mask[sl], done=(k == 2))
        targets.append(None if learner.last_target is None else learner.last_target.clone())
    assert targets[0] is None  # no boundary before the first window

    # Forward the whole sequence by hand (numpy, row vectors).
    W, U = core.W.detach().numpy(), core.U.detach().numpy()
    V = readout.weight.detach().numpy()
    xs, ys, ms = x.numpy(), y.numpy(), mask.numpy()
    hs, h = [], np.zeros((b, W.shape[0]))
    for i in range(3 * t):
        h = h @ W.T + xs[i] @ U.T
        hs.append(h)
    norm = b * t

    def direct(i: int) -> np.ndarray:  # d(window loss)/dh_i through the readout at step i: [B, H]
        return ((hs[i] @ V.T - ys[i]) * ms[i][:, None] / norm) @ V

    # Boundary 1 (end of window 1): window 2's true gradient + window 2's end SG carried back through it.
    lin = learner.sg.net[-1]
    m_end = hs[2 * t - 1] @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()  # M(h_{2T}), per-sample
    a = direct(2 * t - 1) + 0.5 * m_end / b  # sg_scale * M / B is what is applied
    for i in range(2 * t - 2, t - 1, -1):
        a = direct(i) + a @ W
    expected1 = (a @ W) * b  # d/dh_{T} = d/dh_{T+1} W ; per-sample scale (x B)
    np.testing.assert_allclose(targets[1].numpy(), expected1, rtol=1e-9, atol=1e-12)

    # Boundary 2: the episode ends after window 3, so its target is the true future gradient, which
    # autograd on the fully unrolled sequence gives as d(loss after the boundary)/dh_{2T}.
    h = torch.zeros(b, W.shape[0], dtype=torch.float64)
    total, h_b = 0.0, None
    for i in range(3 * t):
        h = h @ core.W.T + x[i] @ core.U.T
        if i == 2 * t - 1:
            h_b = h
            h_b.retain_grad()
        if i >= 2 * t:  # the boundary's future (h_{2T}'s own readout belongs to window 2)
            total = total + sq_loss(readout(h)[None], y[i : i + 1], mask[i : i + 1], float(norm))
    total.backward()
    np.testing.assert_allclose(targets[2].numpy(), h_b.grad.numpy() * b, rtol=1e-9, atol=1e-12)


def test_target_with_zero_sg_is_the_truncated_true_gradient() -> None:
    learner, core, readout, x, y, mask, b, t = _setup()
    with torch.no_grad():
        for p in learner.sg.parameters():
            p.zero_()
    learner.start_episode(b)
    learner.train_window(x[:t], y[:t], mask[:t], done=False)
    learner.train_window(x[t : 2 * t], y[t : 2 * t], mask[t : 2 * t], done=False)
    # With M = 0 the target for boundary 1 is d(window-2 loss)/dh_T only.
    h0 = torch.zeros(b, core.hidden, dtype=torch.float64)
    out1, (h_t,) = core(x[:t], (h0,))
    h_t = h_t.detach().requires_grad_(True)
    out2, _ = core(x[t : 2 * t], (h_t,))
    sq_loss(readout(out2), y[t : 2 * t], mask[t : 2 * t], float(b * t)).backward()
    torch.testing.assert_close(learner.last_target, h_t.grad * b)


def test_aux_loss_does_not_leak_into_the_sg_target() -> None:
    """DNI + Aux: M's bootstrapped target is the task loss + carried-back SG gradient, not the aux loss's."""
    learner, core, readout, x, y, mask, b, t = _setup()
    cfg = RecurrentConfig(hidden=4, window=t, sg="dni", aux=True, aux_weight=5.0, lr=0.0, sg_lr=0.0,
                          sg_scale=0.5, clip=0.0)
    aux_learner = TBPTTLearner(core, readout, sq_loss, cfg, state_size=4, out_size=4)
    aux_learner.sg.load_state_dict(learner.sg.state_dict())
    aux_learner.sg.double()
    aux_learner.aux.double()
    for lrn in (learner, aux_learner):
        lrn.start_episode(b)
        for k in range(2):
            sl = slice(k * t, (k + 1) * t)
            m, _ = lrn.train_window(x[sl], y[sl], mask[sl], done=False)
    assert m["aux_loss"] > 0
    torch.testing.assert_close(aux_learner.last_target, learner.last_target)


def test_sg_on_h_only_targets_the_h_part_of_the_state() -> None:
    """sg_state = "h": M reads h and predicts dL/dh only (c, unbounded, is left out); with M = 0 its target
    is the h half of the full-state target, the truncated true gradient."""
    torch.manual_seed(0)
    x, y = torch.randn(6, 3, 2), torch.randn(6, 3, 2)
    targets = {}
    for part in ("hc", "h"):
        torch.manual_seed(1)
        cfg = RecurrentConfig(hidden=4, window=3, sg="dni", sg_state=part, lr=0.0, sg_lr=0.0, clip=0.0)
        learner = TBPTTLearner(LSTMCore(2, 4), nn.Linear(4, 2), sq_loss, cfg, state_size=8, out_size=4)
        assert learner.sg.in_shape == ((4,) if part == "h" else (8,))
        learner.start_episode(3)
        for k in range(2):
            m, _ = learner.train_window(x[3 * k:3 * k + 3], y[3 * k:3 * k + 3], torch.ones(3, 3), done=False)
        targets[part] = learner.last_target
    assert m["state_norm"] > 0 and m["sg_applied_norm"] == 0.0  # M starts at zero
    torch.testing.assert_close(targets["h"], targets["hc"][:, :4])


def test_sg_average_applies_a_moving_average_of_m() -> None:
    """sg_average = β: the applied M's weights follow M's as avg <- β avg + (1 - β) M after each M step, and
    the applied output is the average's (the bootstrap carries the same M back); β = 0 applies M itself."""
    plain = _setup()[0]
    assert plain.sg_applied is plain.sg
    torch.manual_seed(0)
    cfg = RecurrentConfig(hidden=4, window=3, sg="dni", sg_state="h", sg_average=0.75, lr=1e-2, sg_lr=0.1, clip=0.0)
    learner = TBPTTLearner(LSTMCore(2, 4), nn.Linear(4, 2), sq_loss, cfg, state_size=8, out_size=4)
    expected = [p.detach().clone() for p in learner.sg_applied.parameters()]  # M's zero init
    x, y = torch.randn(12, 3, 2), torch.randn(12, 3, 2)
    learner.start_episode(3)
    for k in range(4):
        m, _ = learner.train_window(x[3 * k:3 * k + 3], y[3 * k:3 * k + 3], torch.ones(3, 3), done=False)
        if k > 0:  # M learns from the second window on (the first has no boundary before it)
            expected = [0.75 * e + 0.25 * p.detach() for e, p in zip(expected, learner.sg.parameters())]
    for e, p in zip(expected, learner.sg_applied.parameters()):
        torch.testing.assert_close(p, e)
    assert not torch.allclose(learner.sg.net[-1].weight, learner.sg_applied.net[-1].weight)
    assert {"sg_applied_cosine", "sg_applied_norm_ratio"} <= set(m)
    before = copy.deepcopy(learner.sg_applied)  # the average this window applies (it is updated after)
    m, _ = learner.train_window(x[:3], y[:3], torch.ones(3, 3), done=False)
    with torch.no_grad():
        applied = float(before(learner.state[0]).norm(dim=-1).mean()) * cfg.sg_scale
    assert m["sg_applied_norm"] == pytest.approx(applied) and applied > 0


def test_sg_fit_ridge_is_the_decayed_least_squares_map() -> None:
    """sg_fit = "ridge": after each boundary M is the ridge solution over all boundaries so far, each earlier
    window's rows weighted by sg_memory per window since, the bias not penalised."""
    torch.manual_seed(0)
    cfg = RecurrentConfig(hidden=4, window=3, sg="dni", sg_state="h", sg_fit="ridge", sg_ridge=0.01,
                          sg_memory=0.5, lr=1e-2, clip=0.0)
    learner = TBPTTLearner(LSTMCore(2, 4), nn.Linear(4, 2), sq_loss, cfg, state_size=8, out_size=4)
    x, y = torch.randn(15, 3, 2), torch.randn(15, 3, 2)
    learner.start_episode(3)
    rows: list[tuple[torch.Tensor, torch.Tensor]] = []
    for k in range(5):
        pending = learner.pending
        m, _ = learner.train_window(x[3 * k:3 * k + 3], y[3 * k:3 * k + 3], torch.ones(3, 3), done=False)
        if pending is not None:
            rows.append((pending.double(), learner.last_target.double()))
    weights = torch.tensor([0.5 ** (len(rows) - 1 - i) for i in range(len(rows))], dtype=torch.float64)
    xb = torch.cat([torch.cat([s, torch.ones(3, 1, dtype=torch.float64)], 1) for s, _ in rows])  # [4 * 3, 5]
    t = torch.cat([tg for _, tg in rows])
    w = weights.repeat_interleave(3)[:, None]
    reg = torch.diag(torch.tensor([1.0] * 4 + [0.0], dtype=torch.float64)) * 0.01 * float(w.sum())
    expected = torch.linalg.solve(xb.T @ (w * xb) + reg, xb.T @ (w * t))
    lin = learner.sg.net[-1]
    torch.testing.assert_close(lin.weight.double(), expected[:-1].T, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(lin.bias.double(), expected[-1], rtol=1e-4, atol=1e-6)
    assert "sg_cosine" in m and float(lin.weight.detach().abs().sum()) > 0


def test_sg_metrics_and_bptt_baseline() -> None:
    cfg = RecurrentConfig(hidden=8, window=2, sg="none")
    core = LinearRNN(2, 8).float()
    learner = TBPTTLearner(core, nn.Linear(8, 2), sq_loss, cfg, state_size=8, out_size=8)
    assert learner.sg is None
    learner.start_episode(4)
    m, logits = learner.train_window(torch.randn(2, 4, 2), torch.randn(2, 4, 2), torch.ones(2, 4), done=False)
    assert "sg_cosine" not in m and logits.shape == (2, 4, 2)


def test_copy_loss_is_bits_per_sequence() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4, 8))
    tgt = rng.integers(0, 2, size=(5, 4, 8)).astype(np.float64)
    mask = np.array([0, 0, 1, 1, 1])[:, None].repeat(4, 1).astype(bool)
    loss = copy_loss(torch.tensor(logits), torch.tensor(tgt), torch.tensor(mask).double(), norm=4.0)
    assert float(loss) / math.log(2) == pytest.approx(bits_per_sequence(logits, tgt, mask))


# ----------------------------------------------------------------------------------------- curriculum


def test_curriculum_advances_when_error_low() -> None:
    cur = Curriculum(CurriculumConfig(threshold=0.15, avg_over=3))
    assert not cur.update(5.0, 1)
    assert not cur.update(0.1, 1) and not cur.update(0.1, 1)  # mean of last 3 still high
    assert cur.update(0.1, 1)
    assert (cur.length, cur.max_length) == (2, 1)
    for _ in range(2):
        assert not cur.update(0.01, 2)  # window restarts at each level
    assert cur.update(0.01, 2) and cur.max_length == 2


def test_curriculum_step_unit_and_repeat_alternation() -> None:
    cur = Curriculum(CurriculumConfig(threshold=0.15, avg_over=1, unit="step"), repeat=True)
    assert cur.update(1.0, 10)  # 0.1 bits per output step
    assert (cur.length, cur.repeats) == (2, 1)
    assert cur.update(0.2, 3)
    assert (cur.length, cur.repeats) == (2, 2) and cur.max_length == 2  # solved (2, 1): 2 vectors
    assert cur.update(0.0, 5) and (cur.length, cur.repeats) == (3, 2) and cur.max_length == 4


# ---------------------------------------------------------------------------------------- validation


def _copy_recipe(**agent: object) -> dict:
    return {
        "run": {"kind": "recurrent", "steps": 20, "seed": 1, "log_every": 5},
        "env": {"id": "dnilab/Copy-v0", "kwargs": {"bits": 4}},
        "agent": {"hidden": 8, "window": 3, "batch_size": 4, **agent},
        "curriculum": {"avg_over": 2, "threshold": 100.0},
    }


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"agent": {"window": 0}}, r"agent\.window: must be >= 1, got 0"),
        ({"agent": {"sg": "bptt"}}, r"agent\.sg"),
        ({"agent": {"widow": 3}}, r"agent\.widow: unknown key"),
        ({"agent": {"aux": True, "sg": "none"}}, r"agent\.aux"),
        ({"agent": {"lr": -1}}, r"agent\.lr"),
        ({"agent": {"sg_hidden": [0]}}, r"agent\.sg_hidden"),
        ({"agent": {"sg_average": 1.0}}, r"agent\.sg_average: must be < 1, got 1\.0"),
        ({"agent": {"sg_fit": "sgd"}}, r"agent\.sg_fit: must be 'adam' or 'ridge'"),
        ({"agent": {"sg_fit": "ridge", "sg_hidden": [8]}}, r"agent\.sg_fit: 'ridge' fits a linear M"),
        ({"agent": {"sg_ridge": 0}}, r"agent\.sg_ridge"),
        ({"run": {"kind": "recurrent", "steps": 0}}, r"run\.steps"),
        ({"run": {"kind": "feedforward", "steps": 3}}, r"run\.kind"),
        ({"env": {"id": "dnilab/Copy-v0", "kwargs": {"batch_size": 3}}}, r"env\.kwargs\.batch_size"),
        ({"env": {"id": "dnilab/Copy-v0", "kwargs": {"lenght": 3}}}, r"env\.kwargs\.lenght"),
        ({"env": {"id": "x/Other-v0"}}, r"env\.task"),
        ({"curriculum": {"threshold": 0}}, r"curriculum\.threshold"),
        ({"curriculum": {"unit": "bits"}}, r"curriculum\.unit"),
        ({"extra": {}}, r"^extra: unknown key \(known: agent, curriculum, env, run\)"),
    ],
)
def test_validate_names_the_bad_key(patch: dict, match: str) -> None:
    recipe = _copy_recipe()
    for k, v in patch.items():
        recipe[k] = v if k != "agent" else {**recipe["agent"], **v}
    with pytest.raises(ValueError, match=match):
        validate_recurrent(recipe)


def test_curriculum_rejected_for_char_lm() -> None:
    recipe = {"run": {"kind": "recurrent", "steps": 1}, "env": {"id": "dnilab/CharLM-v0"}, "curriculum": {}}
    with pytest.raises(ValueError, match="curriculum"):
        validate_recurrent(recipe)


def test_config_defaults_and_types() -> None:
    cfg = RecurrentConfig.model_validate({"lr": 1, "sg_hidden": [16]})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.sg_hidden == [16] and cfg.window == 3
    with pytest.raises(ValueError, match=r"^agent\.aux: must be true or false, got 1"):
        validate_recurrent(_copy_recipe(aux=1))  # no int taken for a bool


def test_copy_recipe_gets_a_curriculum_and_its_task() -> None:
    recipe = _copy_recipe()
    del recipe["curriculum"]
    spec = parse_recipe(recipe)
    assert spec.task == "copy" and spec.curriculum == CurriculumConfig()


# -------------------------------------------------------------------------------------------- runs


@pytest.mark.parametrize("mode", [{"sg": "none"}, {"sg": "dni"}, {"sg": "dni", "aux": True}])
def test_run_recurrent_copy_tiny(mode: dict) -> None:
    reports: list[tuple[int, dict]] = []
    out = run_recurrent(_copy_recipe(**mode), lambda s, m: reports.append((s, m)), lambda: False)
    assert isinstance(out["max_length"], int) and out["max_length"] >= 1  # threshold 100 bits: always solved
    assert [s for s, _ in reports] == [5, 10, 15, 20]
    last = reports[-1][1]
    assert {"loss", "length", "max_length"} <= set(last)
    if mode["sg"] == "dni":
        assert "sg_cosine" in last and "sg_norm_ratio" in last
    if mode.get("aux"):
        assert "aux_loss" in last


def test_run_recurrent_repeat_copy_and_should_stop() -> None:
    recipe = _copy_recipe()
    recipe["env"] = {"id": "dnilab/RepeatCopy-v0", "kwargs": {"bits": 3}}
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 7

    out = run_recurrent(recipe, lambda s, m: None, stop)
    assert "max_length" in out and "final_repeats" in out


def test_run_recurrent_char_lm_tiny() -> None:
    text = ("the cat sat on the mat. " * 40) + "the dog ate the log. " * 10
    recipe = {
        "run": {"kind": "recurrent", "steps": 30, "seed": 0, "log_every": 10, "eval_every": 15},
        "env": {"id": "dnilab/CharLM-v0", "kwargs": {"text": text}},
        "agent": {"hidden": 16, "window": 4, "batch_size": 4, "eval_batch_size": 2, "lr": 0.01},
    }
    reports: list[tuple[int, dict]] = []
    out = run_recurrent(recipe, lambda s, m: reports.append((s, m)), lambda: False)
    assert set(out) == {"valid_bpc", "test_bpc"}
    assert all(math.isfinite(v) and 0 < v < 10 for v in out.values())
    assert any("valid_bpc" in m for _, m in reports) and any("test_bpc" in m for _, m in reports)


def test_shipped_recurrent_recipes_validate() -> None:
    import tomllib
    from pathlib import Path

    runs = Path(__file__).resolve().parents[2] / "runs"
    names = [
        f"{task}-t{t}-{m}"
        for task in ("copy", "repeatcopy")
        for t in (2, 3, 4, 5)
        for m in ("bptt", "dni", "dni-aux")
    ] + ["charlm-t8-bptt", "charlm-t8-dni", "charlm-t40-bptt"]
    for name in names:
        with open(runs / f"{name}.toml", "rb") as f:
            validate_recurrent(tomllib.load(f))


def test_controls_apply_noise_of_m_s_norm_or_m_shuffled_across_the_batch() -> None:
    from agents.tbptt import control

    torch.manual_seed(0)
    m = torch.randn(6, 5)
    noise = control(m, "noise")
    torch.testing.assert_close(noise.norm(dim=-1), m.norm(dim=-1))
    assert (noise - m).abs().max() > 0.1
    shuffled = control(m, "shuffle")
    assert sorted(map(tuple, shuffled.tolist())) == sorted(map(tuple, m.tolist()))
    assert control(m, "none") is m
    with pytest.raises(ValueError, match="sg_control"):
        RecurrentConfig(sg="none", sg_control="noise")


@pytest.mark.parametrize("kind", ["noise", "shuffle"])
def test_a_controlled_run_applies_the_control_and_m_still_learns_from_what_came_back(kind: str) -> None:
    targets = {}
    for k in ("none", kind):
        learner, core, readout, x, y, mask, b, t = _setup(sg_scale=0.5)
        learner.cfg = learner.cfg.model_copy(update={"sg_control": k})
        learner.start_episode(b)
        for w in range(2):
            sl = slice(w * t, (w + 1) * t)
            learner.train_window(x[sl], y[sl], mask[sl], done=False)
        targets[k] = learner.last_target.clone()
    assert not torch.allclose(targets["none"], targets[kind])  # what was applied came back into M's target
