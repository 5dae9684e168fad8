"""rnnbook.bptt (chapters 3, 6 and 9): one harness checks the hand-written backward passes
of the RNN, the LSTM and the GRU against autograd through PyTorch's modules and against
central differences; then the RNN's properties and the gradient-check toolkit."""

from typing import Callable, NamedTuple

import pytest
import torch
from torch import nn

from rnnbook.bptt import (gru_backward, gru_forward, gru_step_backward, gru_step_forward, lstm_backward,
                          lstm_forward, lstm_step_backward, lstm_step_forward, numerical_gradient, relative_error,
                          rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward)
from rnnbook.gru import gru_step
from rnnbook.lstm import lstm_step
from rnnbook.rnn import rnn_step

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
NAMES = ["xs", "h0", "W_ih", "W_hh", "b_ih", "b_hh"]


def make_problem(T, B, I, H, seed=0, device="cpu"):
    """A float64 nn.RNN of the given sizes, inputs, an initial state and an output gradient G."""
    torch.manual_seed(seed)
    reference = nn.RNN(I, H, dtype=torch.float64).to(device)
    xs = torch.randn(T, B, I, dtype=torch.float64, device=device)
    h0 = torch.randn(B, H, dtype=torch.float64, device=device)
    G = torch.randn(T, B, H, dtype=torch.float64, device=device)
    return reference, xs, h0, G


def autograd_gradients(reference, xs, h0, G):
    """Gradients of sum(hs * G) from nn.RNN and autograd, in the order of NAMES."""
    xs, h0 = xs.clone().requires_grad_(), h0.clone().requires_grad_()
    reference.zero_grad()
    hs, _ = reference(xs, h0.unsqueeze(0))
    (hs * G).sum().backward()
    return hs.detach(), [xs.grad, h0.grad, *(p.grad for p in reference.parameters())]


SIZES = [(1, 1, 3, 2), (5, 1, 4, 6), (4, 3, 7, 2), (1, 2, 1, 1), (9, 4, 3, 5)]


class Kind(NamedTuple):
    name: str
    module: type  # the PyTorch module autograd differentiates
    forward: Callable  # forward(xs, *state, *weights) -> (hs, [cs,] caches)
    backward: Callable  # backward(dhs, caches) -> (dxs, *d_state0, *d_weights)
    step_forward: Callable
    step_backward: Callable
    step: Callable  # the autograd-differentiable step of rnnbook.rnn, .lstm or .gru
    gates: int
    state_parts: int


KINDS = [Kind("rnn", nn.RNN, rnn_forward, rnn_backward, rnn_step_forward, rnn_step_backward, rnn_step, 1, 1),
         Kind("lstm", nn.LSTM, lstm_forward, lstm_backward, lstm_step_forward, lstm_step_backward, lstm_step, 4, 2),
         Kind("gru", nn.GRU, gru_forward, gru_backward, gru_step_forward, gru_step_backward, gru_step, 3, 1)]
KIND_IDS = [kind.name for kind in KINDS]


def kind_problem(kind, T, B, I, H, seed=0, device="cpu"):
    """A float64 module, inputs, an initial state (a tuple of parts) and an output gradient G."""
    torch.manual_seed(seed)
    reference = kind.module(I, H, dtype=torch.float64).to(device)
    xs = torch.randn(T, B, I, dtype=torch.float64, device=device)
    state = tuple(torch.randn(B, H, dtype=torch.float64, device=device) for _ in range(kind.state_parts))
    return reference, xs, state, torch.randn(T, B, H, dtype=torch.float64, device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("T, B, I, H", SIZES)
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_forward_and_backward_match_the_pytorch_module_with_autograd(kind, T, B, I, H, device):
    reference, xs, state, G = kind_problem(kind, T, B, I, H, seed=T * 1000 + B * 100 + I * 10 + H, device=device)
    leaves = [tensor.clone().requires_grad_() for tensor in (xs, *state)]
    module_state = tuple(part[None] for part in leaves[1:])
    hs_torch, _ = reference(leaves[0], module_state if len(module_state) > 1 else module_state[0])
    (hs_torch * G).sum().backward()
    expected = [leaf.grad for leaf in leaves] + [p.grad for p in reference.parameters()]
    *states, caches = kind.forward(xs, *state, *(p.detach() for p in reference.parameters()))
    assert len(states) == kind.state_parts and all(s.shape == (T, B, H) for s in states) and len(caches) == T
    torch.testing.assert_close(states[0], hs_torch.detach())
    grads = kind.backward(G, caches)
    assert len(grads) == len(expected)
    for index, (ours, theirs) in enumerate(zip(grads, expected)):
        assert ours.shape == theirs.shape, index
        assert relative_error(ours, theirs) < 1e-12, index


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_step_backward_equals_autograd_of_the_step(kind):
    torch.manual_seed(1)
    B, I, H, G = 3, 4, 2, kind.gates
    tensors = [torch.randn(*shape, dtype=torch.float64, requires_grad=True)
               for shape in [(B, I)] + [(B, H)] * kind.state_parts + [(G * H, I), (G * H, H), (G * H,), (G * H,)]]
    x, state, weights = tensors[0], tensors[1:1 + kind.state_parts], tensors[1 + kind.state_parts:]
    expected = kind.step(x, tuple(state) if kind.state_parts > 1 else state[0], *weights)
    expected = expected if isinstance(expected, tuple) else (expected,)
    *new_state, cache = kind.step_forward(*(t.detach() for t in tensors))
    upstream = [torch.randn(B, H, dtype=torch.float64) for _ in range(kind.state_parts)]  # into h (and c)
    sum(((part * d).sum() for part, d in zip(expected, upstream)), torch.zeros(())).backward()
    for ours, theirs in zip(new_state, expected):
        torch.testing.assert_close(ours, theirs.detach())
    grads = kind.step_backward(*upstream, cache)
    assert len(grads) == len(tensors)
    for ours, tensor in zip(grads, tensors):
        assert relative_error(ours, tensor.grad) < 1e-12


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_backward_matches_central_differences(kind):
    reference, xs, state, G = kind_problem(kind, 3, 2, 3, 4, seed=7)
    inputs = [xs, *state, *(p.detach().clone() for p in reference.parameters())]
    grads = kind.backward(G, kind.forward(*inputs)[-1])

    def loss():
        return (kind.forward(*inputs)[0] * G).sum()

    for index, (tensor, grad) in enumerate(zip(inputs, grads)):
        assert relative_error(grad, numerical_gradient(loss, tensor)) < 1e-7, index



def test_a_wrong_backward_is_caught():
    """The checks can fail: dropping the tanh derivative gives a large relative error."""
    reference, xs, h0, G = make_problem(4, 2, 3, 3, seed=3)
    params = [p.detach() for p in reference.parameters()]
    _, caches = rnn_forward(xs, h0, *params)
    x, h_prev, W_ih, W_hh, h = caches[-1]
    wrong_dW_hh = G[-1].T @ h_prev  # forgot the (1 - h**2) factor
    right_dW_hh = rnn_step_backward(G[-1], caches[-1])[3]
    assert relative_error(wrong_dW_hh, right_dW_hh) > 1e-2


def test_backward_does_not_use_autograd_and_leaves_inputs_alone():
    reference, xs, h0, G = make_problem(3, 2, 2, 3)
    params = [p.detach() for p in reference.parameters()]
    before = [t.clone() for t in (xs, h0, *params)]
    with torch.no_grad():
        hs, caches = rnn_forward(xs, h0, *params)
        grads = rnn_backward(G, caches)
    _, expected = autograd_gradients(reference, xs, h0, G)
    for ours, theirs in zip(grads, expected):
        torch.testing.assert_close(ours, theirs)
    for tensor, copy in zip((xs, h0, *params), before):
        assert torch.equal(tensor, copy)


def test_gradient_into_a_state_is_the_sum_of_its_two_sources():
    """With a loss on the last step only, dh0 is the last gradient carried back T times."""
    reference, xs, h0, G = make_problem(2, 1, 2, 3, seed=5)
    params = [p.detach() for p in reference.parameters()]
    _, caches = rnn_forward(xs, h0, *params)
    dhs = torch.zeros_like(G)
    dhs[-1] = G[-1]
    _, dh0, *_ = rnn_backward(dhs, caches)
    dh1 = rnn_step_backward(G[-1], caches[1])[1]  # only the route through step 2
    assert torch.equal(rnn_step_backward(dh1, caches[0])[1], dh0)
    dhs[0] = G[0]  # a loss at step 1 too: its gradient is added before the tanh
    _, dh0_both, *_ = rnn_backward(dhs, caches)
    torch.testing.assert_close(dh0_both, rnn_step_backward(dh1 + G[0], caches[0])[1])


@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (2, 1, 3)])
def test_numerical_gradient_of_a_known_function(shape):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64)
    before = x.clone()
    estimate = numerical_gradient(lambda: (x ** 3).sum(), x)
    assert estimate.shape == x.shape and estimate.dtype == torch.float64
    torch.testing.assert_close(estimate, 3 * before ** 2, rtol=1e-8, atol=1e-8)
    assert torch.equal(x, before)


def test_numerical_gradient_on_a_non_contiguous_view_and_a_leaf():
    base = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    view = base.T  # non-contiguous: nudging it must nudge base
    estimate = numerical_gradient(lambda: (base * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum(), view)
    torch.testing.assert_close(estimate, torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], dtype=torch.float64))
    leaf = torch.ones(3, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(numerical_gradient(lambda: (2 * leaf).sum(), leaf), torch.full((3,), 2.0, dtype=torch.float64))
    assert leaf.grad is None


def test_numerical_gradient_restores_x_when_f_raises():
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)

    def explode():
        raise ZeroDivisionError("boom")

    with pytest.raises(ZeroDivisionError):
        numerical_gradient(explode, x)
    assert torch.equal(x, torch.tensor([1.0, 2.0], dtype=torch.float64))


def test_numerical_gradient_refuses_bad_input():
    with pytest.raises(ValueError, match="float64"):
        numerical_gradient(lambda: 0.0, torch.zeros(3))
    with pytest.raises(ValueError, match="float64"):
        numerical_gradient(lambda: 0.0, [1.0, 2.0])
    x = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="scalar"):
        numerical_gradient(lambda: x * 2, x)
    with pytest.raises(ValueError, match="eps"):
        numerical_gradient(lambda: x.sum(), x, eps=0.0)
    assert torch.equal(x, torch.zeros(3, dtype=torch.float64))


def test_relative_error_properties():
    torch.manual_seed(0)
    a, b = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    assert relative_error(a, a) == 0.0
    assert relative_error(torch.zeros(3), torch.zeros(3)) == 0.0
    assert relative_error(a, b) == relative_error(b, a)
    assert relative_error(a, -a) == 1.0 and relative_error(a, torch.zeros_like(a)) == 1.0
    assert 0.0 < relative_error(a, b) <= 1.0
    assert relative_error(1e-30 * a, 1e-30 * b) == pytest.approx(relative_error(a, b), rel=1e-12)
    assert relative_error(-3.0 * a, -3.0 * b) == pytest.approx(relative_error(a, b), rel=1e-12)
    assert relative_error([1.0, 2.0], [1.0, 2.5]) == pytest.approx(0.5 / 4.5)
    assert relative_error(torch.tensor([1.0], dtype=torch.float32), [1.0]) == 0.0


def test_relative_error_is_not_fooled_by_nan_and_refuses_bad_shapes():
    nan = relative_error(torch.tensor([1.0, float("nan")]), torch.tensor([1.0, 2.0]))
    assert not nan < 1e-6
    with pytest.raises(ValueError, match="same shape"):
        relative_error(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="empty"):
        relative_error(torch.zeros(0), torch.zeros(0))


def shapes_ok(B=2, I=3, H=4):
    return dict(x=torch.zeros(B, I), h_prev=torch.zeros(B, H), W_ih=torch.zeros(H, I),
                W_hh=torch.zeros(H, H), b_ih=torch.zeros(H), b_hh=torch.zeros(H))


@pytest.mark.parametrize("name, bad, message", [
    ("x", torch.zeros(2, 3, 1), r"x should have shape \(B, I\)"),
    ("h_prev", torch.zeros(4), r"h_prev \(B, H\)"),
    ("h_prev", torch.zeros(1, 4), r"h_prev should have shape \(B, H\) = \(2, 4\), got \(1, 4\)"),
    ("W_ih", torch.zeros(3, 4), r"W_ih should have shape \(H, I\) = \(4, 3\), got \(3, 4\)"),
    ("W_hh", torch.zeros(4, 3), r"W_hh should have shape \(H, H\) = \(4, 4\)"),
    ("b_ih", torch.zeros(1, 4), r"b_ih should have shape \(H,\) = \(4,\)"),
    ("b_hh", torch.zeros(3), r"b_hh should have shape \(H,\) = \(4,\)"),
])
def test_step_forward_refuses_bad_shapes(name, bad, message):
    args = shapes_ok()
    args[name] = bad
    with pytest.raises(ValueError, match=message):
        rnn_step_forward(**args)


def test_step_backward_refuses_a_bad_gradient_shape():
    _, cache = rnn_step_forward(**shapes_ok())
    with pytest.raises(ValueError, match=r"dh should have shape \(B, H\) = \(2, 4\), got \(4, 2\)"):
        rnn_step_backward(torch.zeros(4, 2), cache)


def test_sequence_functions_refuse_bad_shapes():
    args = shapes_ok()
    weights = [args[k] for k in ("W_ih", "W_hh", "b_ih", "b_hh")]
    with pytest.raises(ValueError, match=r"xs should have shape \(T, B, I\)"):
        rnn_forward(torch.zeros(2, 3), args["h_prev"], *weights)
    with pytest.raises(ValueError, match="T >= 1"):
        rnn_forward(torch.zeros(0, 2, 3), args["h_prev"], *weights)
    _, caches = rnn_forward(torch.zeros(5, 2, 3), args["h_prev"], *weights)
    with pytest.raises(ValueError, match=r"dhs should have shape \(T, B, H\) = \(5, 2, 4\), got \(4, 2, 4\)"):
        rnn_backward(torch.zeros(4, 2, 4), caches)
    with pytest.raises(ValueError, match=r"got \(5, 1, 4\)"):  # would broadcast silently
        rnn_backward(torch.zeros(5, 1, 4), caches)
    with pytest.raises(ValueError, match="at least one step"):
        rnn_backward(torch.zeros(0, 2, 4), [])
