"""rnnbook.timing."""

import time

import pytest
import torch

from rnnbook.timing import forward_backward, median_ratio, median_seconds, ratio_at_least


def test_median_seconds_calls_warmup_plus_repeat_times_and_measures():
    calls = []

    def work():
        calls.append(1)
        time.sleep(0.01)

    seconds = median_seconds(work, repeat=3, warmup=2)
    assert len(calls) == 5
    assert 0.009 < seconds < 0.5


@pytest.mark.parametrize("repeat, warmup", [(0, 1), (1, -1)])
def test_median_seconds_refuses_bad_counts(repeat, warmup):
    with pytest.raises(ValueError):
        median_seconds(lambda: None, repeat=repeat, warmup=warmup)


def test_median_ratio_tells_slow_from_fast():
    slow, fast = (lambda: time.sleep(0.02)), (lambda: time.sleep(0.005))
    assert median_ratio(slow, fast, repeat=3) > 2
    assert median_ratio(fast, slow, repeat=3) < 0.5
    with pytest.raises(ValueError):
        median_ratio(slow, fast, repeat=0)


def test_ratio_at_least_is_a_majority_vote_and_returns_the_median(monkeypatch):
    calls = []

    def slow():
        calls.append("slow")
        time.sleep(0.002)

    def fast():
        calls.append("fast")

    assert ratio_at_least(slow, fast, 1.5, attempts=3, repeat=3) >= 1.5
    first = len(calls)
    assert ratio_at_least(fast, slow, 1.5, attempts=3, repeat=3) < 1.5  # a false claim stays false
    assert len(calls) - first == 2 * 2 * (3 + 1)  # decided after two attempts of (warm-up + 3 rounds)
    for attempts in (0, 2):
        with pytest.raises(ValueError, match="attempts"):
            ratio_at_least(fast, slow, 1.0, attempts=attempts)
    from rnnbook import timing

    measured = iter([0.9, 1.3, 1.4, 0.8, 0.95, 1.6])  # a burst, then two above; then two below
    monkeypatch.setattr(timing, "median_ratio", lambda a, b, repeat, warmup: next(measured))
    assert ratio_at_least(fast, slow, 1.1) == 1.3  # median of 0.9, 1.3, 1.4: not the best of them
    assert ratio_at_least(fast, slow, 1.1) == pytest.approx(0.875)  # two below decide; median of 0.8, 0.95


def test_median_ratio_alternates_the_order_within_rounds():
    order = []
    median_ratio(lambda: order.append("a"), lambda: order.append("b"), repeat=4, warmup=0)
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]


def test_forward_backward_clears_and_fills_every_gradient():
    torch.manual_seed(0)
    layer = torch.nn.RNN(3, 4)
    inputs = torch.randn(5, 2, 3)
    step = forward_backward(layer, inputs)
    step()
    first = [p.grad.clone() for p in layer.parameters()]
    step()  # cleared before the pass: the same gradients, not twice them
    for grad, parameter in zip(first, layer.parameters()):
        assert grad.abs().sum() > 0
        torch.testing.assert_close(parameter.grad, grad)
    expected = torch.autograd.grad(layer(inputs)[0].sum(), list(layer.parameters()))
    for grad, parameter in zip(expected, layer.parameters()):
        torch.testing.assert_close(parameter.grad, grad)
