"""rnnbook.performance (chapter 15): hand-written LSTM layers equal nn.LSTM, the benchmark and
accounting helpers, and tools/gpu_check.py (the book's GPU rows), exercised on the CPU."""

import importlib.util
import os
import time

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from conftest import ROOT
from rnnbook.performance import (WEIGHT_GRADIENT_PRODUCTS, DenseMatmul, LSTMFunction, OneDNNMatmul, Timings,
                                 captured_native_output, check_lstm_arguments, gate_step, indexed_recurrence,
                                 input_projection, interleaved_timings, lstm_autograd_function, lstm_fused_loop,
                                 lstm_per_gate_loop, lstm_precomputed_loop, lstm_products, microseconds_per_operation,
                                 onednn_usable, pass_products_job, product_job, product_seconds, ratio_quartiles,
                                 recurrent_intensity, saved_tensor_bytes, stepwise_recurrence, training_step,
                                 unbind_recurrence, wall_time_accounting)

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


def test_interleaved_timings_reports_ratios_quartiles_and_cpu_use():
    calls = []
    jobs = {"fast": lambda: calls.append("fast"), "slow": lambda: (calls.append("slow"), sum(range(20000)))}
    timing = interleaved_timings(jobs, "fast", rounds=3, warmup=1)
    assert isinstance(timing, Timings)
    assert timing.ratios["fast"] == 1.0 and timing.ratios["slow"] > 1.0
    assert timing.quartiles["fast"] == (1.0, 1.0)
    first, third = timing.quartiles["slow"]
    assert first <= timing.ratios["slow"] <= third
    assert set(timing.seconds) == {"fast", "slow"} and all(value > 0 for value in timing.seconds.values())
    assert 0 < timing.cpu_per_wall["slow"] < 1.5  # one thread: CPU time cannot run far ahead of wall time
    assert calls.count("fast") == calls.count("slow") == 4
    assert calls[:2] == ["fast", "slow"] and calls[2:4] == ["slow", "fast"]  # the order rotates
    with pytest.raises(ValueError, match="reference"):
        interleaved_timings(jobs, "missing")
    with pytest.raises(ValueError):
        interleaved_timings(jobs, "fast", rounds=0)


def test_interleaved_timings_synchronises_before_every_clock_read():
    events = []
    jobs = {"a": lambda: events.append("a"), "b": lambda: events.append("b")}
    interleaved_timings(jobs, "a", rounds=2, warmup=1, synchronize=lambda: events.append("sync"))
    assert events.count("sync") == 2 * 3 * 2  # before and after each of 3 rounds x 2 jobs
    for index, event in enumerate(events):
        if event != "sync":  # every call sits between two synchronisations
            assert events[index - 1] == "sync" and events[index + 1] == "sync"


def test_ratio_quartiles():
    assert ratio_quartiles([2.0]) == (2.0, 2.0)
    assert ratio_quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 4.0)


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


def test_captured_native_output_collects_both_descriptors_and_restores_them():
    before = [os.fstat(descriptor) for descriptor in (1, 2)]
    with captured_native_output() as collected:
        os.write(1, b"to stdout ")
        os.write(2, b"to stderr")
    assert collected == ["to stdout to stderr"]
    after = [os.fstat(descriptor) for descriptor in (1, 2)]
    assert [(s.st_ino, s.st_dev) for s in after] == [(s.st_ino, s.st_dev) for s in before]
    with captured_native_output((2,)) as collected:
        os.write(2, b"only this")
    assert collected == ["only this"]


def small_layer(T=6, B=3, I=4, H=5):
    torch.manual_seed(0)
    lstm = nn.LSTM(I, H)
    x = torch.randn(T, B, I, requires_grad=True)
    return lstm, x, (torch.zeros(B, H), torch.zeros(B, H))


PARTS = ("matrix products", "fused layer", "layout copies", "other operators", "between operators, forward",
         "between operators, backward")


def test_wall_time_accounting_adds_up_to_the_wall_time():
    lstm, x, state = small_layer()
    account = wall_time_accounting(lambda: lstm_precomputed_loop(x, state, weights_of(lstm))[0])
    assert sum(account[part] for part in PARTS) == pytest.approx(account["wall"], rel=1e-6)
    assert all(account[part] >= 0 for part in PARTS) and account["matrix products"] > 0
    assert account["fused layer"] == 0 and account["layout copies"] == 0
    assert account["forward operators"] > 6 and account["backward nodes"] > 6
    fused = wall_time_accounting(lambda: lstm(x)[0], passes=1)
    if onednn_usable(x):  # nn.LSTM runs oneDNN's layer operators on a CPU
        assert fused["fused layer"] > 0 and fused["matrix products"] == 0
    function = wall_time_accounting(lambda: lstm_autograd_function(x, state, weights_of(lstm))[0])
    assert function["backward nodes"] < account["backward nodes"]  # one node for the whole layer
    with pytest.raises(ValueError, match="passes"):
        wall_time_accounting(lambda: lstm(x)[0], passes=0)


@ONEDNN
def test_wall_time_accounting_separates_the_copies_into_onednn_layout():
    lstm, x, state = small_layer()
    account = wall_time_accounting(lambda: lstm_autograd_function(x, state, weights_of(lstm), "onednn")[0])
    assert account["layout copies"] > 0 and account["matrix products"] > 0
    assert sum(account[part] for part in PARTS) == pytest.approx(account["wall"], rel=1e-6)


def test_wall_time_accounting_returns_the_median_pass():
    lstm, x, state = small_layer()

    def between_forward(slow_calls):
        calls = []

        def run():  # call 1 is the uncounted pass, calls 2-4 the three counted ones
            calls.append(None)
            if len(calls) in slow_calls:
                time.sleep(0.05)  # Python time before the operators: "between operators, forward"
            return lstm_precomputed_loop(x, state, weights_of(lstm))[0]

        return wall_time_accounting(run, passes=3)["between operators, forward"]

    assert between_forward({3}) < 0.04 < between_forward({2, 4})


def test_microseconds_per_operation_are_positive_and_autograd_costs_more():
    prices = microseconds_per_operation(count=300, repeat=3)
    assert set(prices) == {"operation, no autograd", "operation recorded by autograd", "backward node"}
    assert all(0 <= value < 1000 for value in prices.values())
    assert prices["operation, no autograd"] > 0


def test_lstm_products_count_the_function_flops_with_the_input_gradient():
    T, B, I, H = 4, 3, 5, 6
    products = lstm_products(T, B, I, H)
    total = sum(2 * M * K * N * calls for M, K, N, calls in products.values())
    assert total == 2 * T * B * 4 * H * (3 * I + 3 * H)
    lstm, x, state = small_layer(T, B, I, H)
    with FlopCounterMode(display=False) as counter:
        lstm_autograd_function(x, state, weights_of(lstm))[0].sum().backward()
    assert counter.get_total_flops() == total


@pytest.mark.parametrize("library", [pytest.param("oneDNN", marks=ONEDNN), "MKL"])
def test_product_seconds_measures_a_product(library):
    assert 0 < product_seconds(16, 8, 4, library, repeat=2) < 1
    assert 0 < product_seconds(16, 8, 4, library, gram=True, repeat=2) < 1
    if library == "oneDNN":
        assert 0 < product_seconds(16, 8, 4, library, copies=False, repeat=2) < 1
    with pytest.raises(ValueError, match="library"):
        product_seconds(2, 2, 2, "BLIS")


@pytest.mark.parametrize("library", [pytest.param("oneDNN", marks=ONEDNN), "MKL"])
def test_product_job_returns_products_of_the_asked_shape_as_often_as_asked(library):
    results = product_job(5, 7, 3, library, calls=4)()
    assert len(results) == 4 and all(tuple(result.shape) == (5, 3) for result in results)
    grams = product_job(5, 700, 3, library, calls=2, gram=True)()  # more rows than oneDNN's block: summed blocks
    assert len(grams) == 2 and all(tuple(result.shape) == (5, 3) for result in grams)
    with pytest.raises(ValueError, match="gram"):
        product_job(5, 7, 3, library, gram=True, copies=False)


def test_pass_products_job_does_the_function_flops():
    T, B, I, H = 4, 3, 5, 6
    assert WEIGHT_GRADIENT_PRODUCTS <= set(lstm_products(T, B, I, H))
    with FlopCounterMode(display=False) as counter:
        pass_products_job(T, B, I, H, "MKL")()
    assert counter.get_total_flops() == 2 * T * B * 4 * H * (3 * I + 3 * H)


def test_recurrent_intensity_is_about_half_the_batch_and_grows_when_weights_stay_on_chip():
    B, H = 4, 3
    assert recurrent_intensity(B, H) == pytest.approx(2 * B * 4 * H * H / (4 * (4 * H * H + B * H + B * 4 * H)))
    assert recurrent_intensity(64, 4096) == pytest.approx(32, rel=0.05)
    assert recurrent_intensity(64, 4096, bytes_per_number=2) == pytest.approx(64, rel=0.05)
    assert recurrent_intensity(64, 512, steps_per_weight_read=100) > 5 * recurrent_intensity(64, 512)


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_skips_with_a_clear_message_without_cuda(monkeypatch, capsys):
    gpu_check = load_gpu_check()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("gpu-check skipped: no CUDA device") and "unmeasured" in out


def test_gpu_check_harness_passes_on_the_cpu_and_catches_a_wrong_layer(monkeypatch):
    gpu_check = load_gpu_check()
    report = gpu_check.Report()
    device = torch.device("cpu")
    gpu_check.stacked_equivalence(device, report)
    gpu_check.packed_equivalence(device, report)
    gpu_check.layer_equivalence(device, report)
    assert len(report.rows) == 15 and not report.failed
    broken = gpu_check.Report()
    monkeypatch.setattr(gpu_check, "lstm_per_gate_loop",
                        lambda x, state, weights: lstm_per_gate_loop(x, state, (weights[0], weights[1] * 1.01, *weights[2:])))
    gpu_check.layer_equivalence(device, broken)
    assert [row[1] for row in broken.failed] == ["per-gate loop"]


def test_gpu_check_timing_rows_run_on_the_cpu():
    gpu_check = load_gpu_check()
    report = gpu_check.Report()
    gpu_check.timing_rows(torch.device("cpu"), {"tiny": (3, 2, 4, 5)}, rounds=1, report=report)
    rows = {row: text for _, row, text in report.timings}
    assert rows["nn.LSTM float32"].endswith("ms")
    assert all(text.endswith("]") for row, text in rows.items()
               if row != "nn.LSTM float32" and not text.startswith("not run")), rows
    assert {"nn.GRU float32", "LSTMCell loop", "precomputed + unbind", "Function, dense GEMM"} <= set(rows)
