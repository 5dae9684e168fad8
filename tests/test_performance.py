"""rnnbook.performance (chapter 15): hand-written LSTM layers equal nn.LSTM, and the benchmark helpers."""

import os

import pytest
import torch
from torch import nn

from rnnbook.performance import (DenseMatmul, LSTMFunction, OneDNNMatmul, check_lstm_arguments, gate_step,
                                 indexed_recurrence, input_projection, interleaved_timings, lstm_autograd_function,
                                 lstm_fused_loop, lstm_per_gate_loop, lstm_precomputed_loop,
                                 native_stderr_silenced, onednn_usable, saved_tensor_bytes, stepwise_recurrence,
                                 training_step, unbind_recurrence)

NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
ONEDNN = pytest.mark.skipif(not onednn_usable(torch.zeros(1)), reason="PyTorch built without oneDNN")


def weights_of(lstm):
    return tuple(getattr(lstm, name) for name in NAMES)


VARIANTS = {
    "per-gate loop": lstm_per_gate_loop,
    "fused loop": lstm_fused_loop,
    "precomputed + unbind": lstm_precomputed_loop,
    "precomputed + indexing": lambda x, s, w: lstm_precomputed_loop(x, s, w, indexed_recurrence),
    "precomputed + stepwise": lambda x, s, w: lstm_precomputed_loop(x, s, w, stepwise_recurrence(gate_step)),
    "Function, dense": lstm_autograd_function,
    "Function, oneDNN": lambda x, s, w: lstm_autograd_function(x, s, w, "onednn"),
}
VARIANT_NAMES = [pytest.param(name, marks=ONEDNN) if "oneDNN" in name else name for name in VARIANTS]


def compare_with_nn_lstm(run, T, B, I, H, dtype, seed=0):
    """Outputs, final states and the gradients of x, h_0, c_0 and all weights of ``run`` and nn.LSTM."""
    torch.manual_seed(seed)
    lstm = nn.LSTM(I, H).to(dtype)
    x = torch.randn(T, B, I, dtype=dtype)
    h0, c0 = torch.randn(B, H, dtype=dtype), torch.randn(B, H, dtype=dtype)
    probes = torch.randn(T, B, H, dtype=dtype), torch.randn(B, H, dtype=dtype), torch.randn(B, H, dtype=dtype)
    results = []
    for use_module in (True, False):
        leaves = [t.clone().requires_grad_() for t in (x, h0, c0)]
        if use_module:
            output, (h_n, c_n) = lstm(leaves[0], (leaves[1][None], leaves[2][None]))
            h_n, c_n = h_n[0], c_n[0]
        else:
            output, (h_n, c_n) = run(leaves[0], (leaves[1], leaves[2]), weights_of(lstm))
        loss = (output * probes[0]).sum() + (h_n * probes[1]).sum() + (c_n * probes[2]).sum()
        grads = torch.autograd.grad(loss, [*leaves, *weights_of(lstm)])
        results.append((output, h_n, c_n, *grads))
    return results


@pytest.mark.parametrize("name", VARIANT_NAMES)
@pytest.mark.parametrize("size", [(7, 3, 5, 6), (1, 1, 2, 3), (4, 2, 9, 2)])
def test_every_variant_equals_nn_lstm_including_all_gradients(name, size):
    ours, theirs = compare_with_nn_lstm(VARIANTS[name], *size, dtype=torch.float32)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["per-gate loop", "fused loop", "precomputed + unbind", "Function, dense"])
def test_variants_equal_nn_lstm_in_float64(name):
    ours, theirs = compare_with_nn_lstm(VARIANTS[name], 6, 2, 3, 4, dtype=torch.float64)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)


@pytest.mark.filterwarnings("ignore:.*torch.jit.script.*deprecated")
def test_scripted_recurrence_equals_the_eager_one():
    scripted = torch.jit.script(unbind_recurrence)
    ours, theirs = compare_with_nn_lstm(lambda x, s, w: lstm_precomputed_loop(x, s, w, scripted), 5, 2, 3, 4,
                                        dtype=torch.float32)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_hand_written_backward_passes_gradcheck():
    torch.manual_seed(1)
    inputs = [torch.randn(shape, dtype=torch.float64, requires_grad=True)
              for shape in [(3, 2, 3), (2, 4), (2, 4), (16, 3), (16, 4), (16,), (16,)]]
    assert torch.autograd.gradcheck(lambda *args: LSTMFunction.apply(*args, DenseMatmul), inputs)


def test_function_skips_the_input_gradient_when_x_needs_none():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4)
    x = torch.randn(5, 2, 3)  # no requires_grad
    state = (torch.zeros(2, 4), torch.zeros(2, 4))
    output, _ = lstm_autograd_function(x, state, weights_of(lstm))
    output.sum().backward()
    assert all(weight.grad is not None for weight in weights_of(lstm))
    expected = torch.autograd.grad(lstm(x)[0].sum(), weights_of(lstm))
    for weight, grad in zip(weights_of(lstm), expected):
        torch.testing.assert_close(weight.grad, grad, rtol=1e-4, atol=1e-5)


def test_indexing_leaves_one_select_node_per_step_and_unbind_one_node():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4)
    x = torch.randn(6, 2, 3)
    state = (torch.zeros(2, 4), torch.zeros(2, 4))

    def count(tensor, name):
        seen, stack, total = set(), [tensor.grad_fn], 0
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            total += node.name() == name
            stack.extend(next_node for next_node, _ in node.next_functions)
        return total

    indexed, _ = lstm_precomputed_loop(x, state, weights_of(lstm), indexed_recurrence)
    unbound, _ = lstm_precomputed_loop(x, state, weights_of(lstm))
    assert count(indexed, "SelectBackward0") == 6 and count(indexed, "UnbindBackward0") == 0
    assert count(unbound, "UnbindBackward0") == 1 and count(unbound, "SelectBackward0") == 0


def test_input_projection_and_gate_step_shapes():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4)
    W_ih, W_hh, b_ih, b_hh = weights_of(lstm)
    x = torch.randn(5, 2, 3)
    xw = input_projection(x, W_ih, b_ih, b_hh)
    assert xw.shape == (5, 2, 16)
    torch.testing.assert_close(xw[2], x[2] @ W_ih.T + b_ih + b_hh)
    h, c = gate_step(xw[0], torch.zeros(2, 4), torch.zeros(2, 4), W_hh)
    assert h.shape == c.shape == (2, 4)


@pytest.mark.parametrize("arguments, message", [
    (lambda x, s, w: (x[0], s, w), r"time-major \(T, B, I\)"),
    (lambda x, s, w: (x[:0], s, w), "T >= 1"),
    (lambda x, s, w: (x.transpose(0, 1), s, w), r"state must be a tuple"),
    (lambda x, s, w: (x, s[0], w), "state must be a tuple"),
    (lambda x, s, w: (x, (s[0][None], s[1][None]), w), "state must be a tuple"),
    (lambda x, s, w: (x, s, w[:3]), "weights must be the tuple"),
    (lambda x, s, w: (x[..., :2], s, w), "W_ih must have shape"),
])
def test_bad_arguments_get_clear_errors(arguments, message):
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4)
    x, state = torch.randn(5, 2, 3), (torch.zeros(2, 4), torch.zeros(2, 4))
    args = arguments(x, state, weights_of(lstm))
    for run in (lstm_per_gate_loop, lstm_fused_loop, lstm_precomputed_loop, lstm_autograd_function):
        with pytest.raises(ValueError, match=message):
            run(*args)


def test_unknown_or_unusable_backends_are_refused():
    lstm = nn.LSTM(3, 4).double()
    x, state = torch.randn(5, 2, 3, dtype=torch.float64), (torch.zeros(2, 4).double(), torch.zeros(2, 4).double())
    with pytest.raises(ValueError, match="backend must be one of"):
        lstm_autograd_function(x, state, weights_of(lstm), backend="mkl")
    with pytest.raises(ValueError, match="float32 CPU"):
        lstm_autograd_function(x, state, weights_of(lstm), backend="onednn")
    with pytest.raises(ValueError, match="float32"):
        OneDNNMatmul(torch.zeros(3, 2, dtype=torch.float64))


@ONEDNN
def test_onednn_matmul_and_gram_equal_dense_products():
    torch.manual_seed(0)
    weight, bias, x = torch.randn(7, 5), torch.randn(7), torch.randn(4, 5)
    torch.testing.assert_close(OneDNNMatmul(weight, bias)(x), DenseMatmul(weight, bias)(x), rtol=1e-5, atol=1e-5)
    a, b = torch.randn(1500, 6), torch.randn(1500, 3)  # more rows than one block
    torch.testing.assert_close(OneDNNMatmul.gram(a, b, rows=640), a.T @ b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(DenseMatmul.gram(a, b), a.T @ b)


def test_interleaved_timings_reports_ratios_to_the_reference():
    calls = []
    jobs = {"fast": lambda: calls.append("fast"), "slow": lambda: (calls.append("slow"), sum(range(20000)))}
    ratios, seconds = interleaved_timings(jobs, "fast", rounds=3, warmup=1)
    assert ratios["fast"] == 1.0 and ratios["slow"] > 1.0
    assert set(seconds) == {"fast", "slow"} and all(value > 0 for value in seconds.values())
    assert calls.count("fast") == calls.count("slow") == 4
    assert calls[:2] == ["fast", "slow"] and calls[2:4] == ["slow", "fast"]  # the order rotates
    with pytest.raises(ValueError, match="reference"):
        interleaved_timings(jobs, "missing")
    with pytest.raises(ValueError):
        interleaved_timings(jobs, "fast", rounds=0)


def test_training_step_runs_forward_and_backward():
    parameter = nn.Parameter(torch.ones(3))
    training_step(lambda: parameter * 2)()
    torch.testing.assert_close(parameter.grad, torch.full((3,), 2.0))


def test_saved_tensor_bytes_counts_what_backward_keeps():
    x = torch.randn(10, 4)
    weight = nn.Parameter(torch.randn(4, 4))
    # tanh saves its output (10 x 4 floats); the product saves x, for the weight's gradient
    kept = saved_tensor_bytes(lambda: torch.tanh(x @ weight), exclude=[x, weight])
    assert kept == 10 * 4 * 4
    assert saved_tensor_bytes(lambda: torch.tanh(x @ weight)) == 10 * 4 * 4 + x.nbytes


def test_function_keeps_exactly_its_buffers_for_backward():
    T, B, I, H = 5, 3, 2, 4
    lstm = nn.LSTM(I, H)
    x = torch.randn(T, B, I)
    state = (torch.zeros(B, H), torch.zeros(B, H))
    kept = saved_tensor_bytes(lambda: lstm_autograd_function(x, state, weights_of(lstm))[0],
                              exclude=[x, *weights_of(lstm)])
    assert kept == 4 * B * H * (7 * T + 2)  # gates 4H, h and c for T + 1 steps, tanh(c) for T


def test_native_stderr_silenced_restores_descriptor_two():
    before = os.fstat(2)
    with native_stderr_silenced():
        os.write(2, b"")  # writing is allowed and goes nowhere
        assert os.fstat(2).st_ino != before.st_ino or os.fstat(2).st_dev != before.st_dev
    after = os.fstat(2)
    assert (after.st_ino, after.st_dev) == (before.st_ino, before.st_dev)
