"""M's learning step on a thread of its own: the same M as inline, errors raised in the caller, no target
dropped when the thread falls behind."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from interfaces import BackgroundLearner, SyntheticGradient


def _train(sg: SyntheticGradient, steps: int, drain: bool) -> None:
    torch.manual_seed(1)
    a = torch.randn(6, 6)
    for step in range(steps):
        h = torch.randn(16, 6)
        sg.predict(step, h)
        sg.learn(step, h @ a / 16)
        if drain and sg.learner is not None:
            sg.learner.drain()  # one update before the next prediction: the inline order exactly


def test_thread_learner_fits_the_same_m_as_inline() -> None:
    made = []
    for learner in ("inline", "thread"):
        torch.manual_seed(0)
        sg = SyntheticGradient(6, hidden=(12,), lr=1e-2, learner=learner)
        _train(sg, 30, drain=True)
        sg.close()
        made.append(sg)
    inline, threaded = made
    assert threaded.trained == inline.trained == 30
    for key, value in inline.state_dict().items():
        assert torch.allclose(value, threaded.state_dict()[key], atol=1e-6), key


def test_thread_learner_learns_while_predictions_go_on() -> None:
    torch.manual_seed(0)
    sg = SyntheticGradient(6, lr=1e-2, learner="thread")
    _train(sg, 300, drain=False)
    sg.close()
    assert sg.trained == 300 and not sg.learner._thread.is_alive()
    torch.manual_seed(1)
    a = torch.randn(6, 6)
    h = torch.randn(16, 6)
    g = sg.predict(10_000, h)
    assert torch.nn.functional.cosine_similarity(g.flatten(), (h @ a / 16).flatten(), dim=0) > 0.9


def test_learn_returns_the_mean_of_the_steps_fitted_since_its_last_call() -> None:
    sg = SyntheticGradient(4, lr=1e-2, learner="thread")
    for step in range(5):
        sg.predict(step, torch.randn(8, 4))
    for step in range(4):
        sg.learn(step, torch.randn(8, 4))
    sg.learner.drain()
    stats = sg.learn(4, torch.randn(8, 4))  # 4 fitted before this call, the fifth perhaps
    assert stats is not None and set(stats) == {"sg_loss", "sg_cosine", "sg_norm_ratio"}
    sg.close()
    assert sg.trained == 5


def test_an_error_in_the_thread_is_raised_in_the_caller() -> None:
    sg = SyntheticGradient(4, lr=1e-2, learner="thread")
    sg.predict(0, torch.randn(8, 4))
    sg.predict(1, torch.randn(8, 4))
    sg.learn(0, torch.randn(8, 5))  # the wrong shape: fails in the thread
    with pytest.raises(RuntimeError, match="learner thread failed") as err:
        sg.learner.drain()
    assert isinstance(err.value.__cause__, RuntimeError)
    with pytest.raises(RuntimeError, match="learner thread failed"):
        sg.learn(1, torch.randn(8, 4))


def test_a_full_queue_makes_the_caller_wait_and_drops_nothing() -> None:
    gate = threading.Event()
    fitted = []

    def fit(item: int) -> dict[str, float]:
        gate.wait(5)
        fitted.append(item)
        return {"x": float(item)}

    learner = BackgroundLearner(fit, capacity=1)
    learner.submit(0)  # taken by the thread, which waits at the gate
    time.sleep(0.05)
    learner.submit(1)  # fills the queue
    opener = threading.Timer(0.1, gate.set)
    opener.start()
    learner.submit(2)  # waits until the thread takes item 1
    learner.close()
    assert fitted == [0, 1, 2] and learner.waits == 1
    assert learner.results() == {"x": 1.0}


def test_unknown_learner_is_rejected() -> None:
    with pytest.raises(ValueError, match="learner: expected one of"):
        SyntheticGradient(4, learner="process")
