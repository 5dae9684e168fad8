"""rnnbook.lstm (chapter 6): the scratch LSTM equals nn.LSTM, the three notations equal
the fused step, and the hand-written backward pass equals autograd."""

import pytest
import torch
from torch import nn

from rnnbook.bptt import numerical_gradient, relative_error
from rnnbook.lstm import (LSTMScratch, concatenated_parameters, lstm_backward, lstm_forward, lstm_step,
                          lstm_step_backward, lstm_step_concatenated, lstm_step_forward, lstm_step_per_gate,
                          lstm_step_row_form, per_gate_parameters, row_form_parameters, set_scratch_forget_bias)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
NAMES = ["xs", "h0", "c0", "W_ih", "W_hh", "b_ih", "b_hh"]


def random_sizes(seed):
    g = torch.Generator().manual_seed(seed)

    def pick(low, high):
        return int(torch.randint(low, high + 1, (1,), generator=g))

    return dict(T=pick(1, 8), B=pick(1, 5), I=pick(1, 9), H=pick(1, 9))


FIXED = [dict(T=1, B=1, I=3, H=5), dict(T=6, B=1, I=7, H=2), dict(T=1, B=4, I=1, H=1), dict(T=5, B=3, I=4, H=4)]
SIZES = FIXED + [random_sizes(seed) for seed in range(10)]
IDS = ["T{T}-B{B}-I{I}-H{H}".format(**s) for s in SIZES]


def copied_from(reference: nn.LSTM) -> LSTMScratch:
    """An LSTMScratch holding a copy of a one-layer nn.LSTM's weights."""
    scratch = LSTMScratch(reference.input_size, reference.hidden_size).to(
        device=reference.weight_ih_l0.device, dtype=reference.weight_ih_l0.dtype)
    with torch.no_grad():
        scratch.W_ih.copy_(reference.weight_ih_l0)
        scratch.W_hh.copy_(reference.weight_hh_l0)
        scratch.b_ih.copy_(reference.bias_ih_l0)
        scratch.b_hh.copy_(reference.bias_hh_l0)
    return scratch


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("s", SIZES, ids=IDS)
def test_scratch_equals_nn_lstm_forward_and_gradients(s, device):
    torch.manual_seed(sum(s.values()))
    reference = nn.LSTM(s["I"], s["H"]).to(device)
    scratch = copied_from(reference)
    xs = torch.randn(s["T"], s["B"], s["I"], device=device)
    h0, c0 = torch.randn(s["B"], s["H"], device=device), torch.randn(s["B"], s["H"], device=device)
    for state in (None, (h0, c0)):
        expected, (h_ref, c_ref) = reference(xs, None if state is None else (h0[None], c0[None]))
        outputs, (h, c) = scratch(xs, state)
        assert outputs.shape == (s["T"], s["B"], s["H"]) and h.shape == c.shape == (s["B"], s["H"])
        torch.testing.assert_close(outputs, expected)
        torch.testing.assert_close(h, h_ref[0])
        torch.testing.assert_close(c, c_ref[0])
    G = torch.randn(s["T"], s["B"], s["H"], device=device)
    (reference(xs)[0] * G).sum().backward()
    (scratch(xs)[0] * G).sum().backward()
    for ours, theirs in zip(scratch.parameters(), reference.parameters()):
        torch.testing.assert_close(ours.grad, theirs.grad)


def test_scratch_is_the_step_loop_and_carries_state():
    torch.manual_seed(3)
    layer = LSTMScratch(3, 4)
    xs = torch.randn(6, 2, 3)
    outputs, (h, c) = layer(xs)
    state = (torch.zeros(2, 4), torch.zeros(2, 4))
    for t in range(6):
        state = lstm_step(xs[t], state, layer.W_ih, layer.W_hh, layer.b_ih, layer.b_hh)
        torch.testing.assert_close(outputs[t], state[0])
    torch.testing.assert_close(c, state[1])
    first, carried = layer(xs[:2])
    second, _ = layer(xs[2:], carried)
    torch.testing.assert_close(torch.cat([first, second]), outputs)


def test_gate_order_is_i_f_g_o():
    """With all weights zero, each gate is set by its bias chunk alone."""
    layer = LSTMScratch(2, 1)
    with torch.no_grad():
        for p in layer.parameters():
            p.zero_()
        layer.b_ih.copy_(torch.tensor([10.0, -10.0, 0.5, 10.0]))  # i open, f closed, g = tanh(0.5), o open
    _, (h, c) = layer(torch.zeros(1, 1, 2), (torch.zeros(1, 1), torch.full((1, 1), 7.0)))
    torch.testing.assert_close(c, torch.full((1, 1), float(torch.tanh(torch.tensor(0.5)))), atol=1e-3, rtol=0)
    torch.testing.assert_close(h, torch.tanh(c), atol=1e-3, rtol=0)


@pytest.mark.parametrize("s", SIZES, ids=IDS)
def test_three_notations_equal_the_fused_step(s):
    torch.manual_seed(100 + sum(s.values()))
    B, I, H = s["B"], s["I"], s["H"]
    W_ih, W_hh = torch.randn(4 * H, I), torch.randn(4 * H, H)
    b_ih, b_hh = torch.randn(4 * H), torch.randn(4 * H)
    p = per_gate_parameters(W_ih, W_hh, b_ih, b_hh)
    forms = [(lstm_step_per_gate, p), (lstm_step_row_form, row_form_parameters(p)),
             (lstm_step_concatenated, concatenated_parameters(p))]
    x, state = torch.randn(B, I), (torch.randn(B, H), torch.randn(B, H))
    expected = lstm_step(x, state, W_ih, W_hh, b_ih, b_hh)
    for step, parameters in forms:
        got = step(x, state, parameters)
        torch.testing.assert_close(got[0], expected[0])
        torch.testing.assert_close(got[1], expected[1])


def test_weight_mapping_is_explicit():
    H, I = 3, 2
    W_ih, W_hh = torch.arange(4 * H * I, dtype=torch.float32).view(4 * H, I), torch.randn(4 * H, H)
    b_ih, b_hh = torch.randn(4 * H), torch.randn(4 * H)
    p = per_gate_parameters(W_ih, W_hh, b_ih, b_hh)
    assert set(p) == {f"{kind}{gate}" for kind in ("W_i", "W_h", "b_i", "b_h") for gate in "ifgo"}
    assert torch.equal(p["W_if"], W_ih[H:2 * H]) and torch.equal(p["W_hg"], W_hh[2 * H:3 * H])
    row = row_form_parameters(p)
    assert set(row) == {f"{kind}{gate}" for kind in ("W_x", "W_h", "b_") for gate in "ifco"}
    assert torch.equal(row["W_xc"], W_ih[2 * H:3 * H].T) and row["W_xc"].shape == (I, H)
    torch.testing.assert_close(row["b_o"], b_ih[3 * H:] + b_hh[3 * H:])
    concatenated = concatenated_parameters(p)
    assert concatenated["W_f"].shape == (H, H + I)
    assert torch.equal(concatenated["W_f"][:, :H], W_hh[H:2 * H]) and torch.equal(concatenated["W_f"][:, H:], W_ih[H:2 * H])


def float64_problem(T, B, I, H, seed, device="cpu"):
    torch.manual_seed(seed)
    reference = nn.LSTM(I, H, dtype=torch.float64).to(device)
    tensors = [torch.randn(*shape, dtype=torch.float64, device=device) for shape in [(T, B, I), (B, H), (B, H), (T, B, H)]]
    return reference, *tensors


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("s", SIZES[:8], ids=IDS[:8])
def test_manual_backward_equals_autograd(s, device):
    reference, xs, h0, c0, G = float64_problem(s["T"], s["B"], s["I"], s["H"], seed=7 + sum(s.values()), device=device)
    leaves = [t.clone().requires_grad_() for t in (xs, h0, c0)]
    hs_torch, _ = reference(leaves[0], (leaves[1][None], leaves[2][None]))
    (hs_torch * G).sum().backward()
    expected = [leaf.grad for leaf in leaves] + [p.grad for p in reference.parameters()]
    hs, cs, caches = lstm_forward(xs, h0, c0, *(p.detach() for p in reference.parameters()))
    assert hs.shape == cs.shape == (s["T"], s["B"], s["H"]) and len(caches) == s["T"]
    torch.testing.assert_close(hs, hs_torch.detach())
    for name, ours, theirs in zip(NAMES, lstm_backward(G, caches), expected):
        assert ours.shape == theirs.shape, name
        torch.testing.assert_close(ours, theirs, msg=lambda m: f"{name}: {m}")


def test_step_backward_equals_autograd_with_a_cell_gradient():
    torch.manual_seed(11)
    B, I, H = 3, 4, 2
    tensors = [torch.randn(*shape, dtype=torch.float64, requires_grad=True)
               for shape in [(B, I), (B, H), (B, H), (4 * H, I), (4 * H, H), (4 * H,), (4 * H,)]]
    h, c, cache = lstm_step_forward(*tensors)
    expected_h, expected_c = lstm_step(tensors[0], (tensors[1], tensors[2]), *tensors[3:])
    torch.testing.assert_close(h, expected_h)
    torch.testing.assert_close(c, expected_c)
    dh, dc = torch.randn(B, H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    ((h * dh).sum() + (c * dc).sum()).backward()
    for ours, tensor in zip(lstm_step_backward(dh, dc, cache), tensors):
        torch.testing.assert_close(ours, tensor.grad)


def test_manual_backward_passes_a_numerical_gradient_check():
    reference, xs, h0, c0, G = float64_problem(4, 2, 3, 2, seed=5)
    inputs = [xs, h0, c0, *(p.detach().clone() for p in reference.parameters())]
    _, _, caches = lstm_forward(*inputs)
    grads = lstm_backward(G, caches)
    for name, tensor, grad in zip(NAMES, inputs, grads):
        numerical = numerical_gradient(lambda: (lstm_forward(*inputs)[0] * G).sum(), tensor)
        assert relative_error(grad, numerical) < 1e-7, name


def test_forget_bias_helper_sets_the_total_and_nothing_else():
    torch.manual_seed(0)
    layer = LSTMScratch(3, 4)
    before = [p.detach().clone() for p in layer.parameters()]
    assert set_scratch_forget_bias(layer, 1.0) is layer
    H = 4
    torch.testing.assert_close(layer.b_ih[H:2 * H] + layer.b_hh[H:2 * H], torch.ones(H))
    for chunk in (slice(0, H), slice(2 * H, 4 * H)):
        assert torch.equal(layer.b_ih[chunk], before[2][chunk]) and torch.equal(layer.b_hh[chunk], before[3][chunk])
    assert torch.equal(layer.W_ih, before[0]) and torch.equal(layer.W_hh, before[1])
    with pytest.raises(ValueError, match="LSTMScratch"):
        set_scratch_forget_bias(nn.LSTM(3, 4), 1.0)


def test_initialisation_matches_pytorch_bounds():
    layer = LSTMScratch(10, 100)
    assert layer.hidden_size == 100
    assert [tuple(p.shape) for p in layer.parameters()] == [(400, 10), (400, 100), (400,), (400,)]
    for parameter in layer.parameters():
        assert 0.9 * 100 ** -0.5 < parameter.abs().max() <= 100 ** -0.5


def test_bad_inputs_give_clear_errors():
    layer = LSTMScratch(3, 4)
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        layer(torch.randn(5, 2, 4))
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        layer(torch.randn(0, 2, 3))
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        layer(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"state tuple \(h, c\).*got Tensor"):
        layer(torch.randn(5, 2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\(2, 4\).*\[\(1, 2, 4\), \(1, 2, 4\)\]"):
        layer(torch.randn(5, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)))
    with pytest.raises(ValueError, match="positive"):
        LSTMScratch(0, 4)
    x, h, c = torch.randn(2, 3), torch.zeros(2, 4), torch.zeros(2, 4)
    W_ih, W_hh, b = torch.randn(16, 3), torch.randn(16, 4), torch.zeros(16)
    with pytest.raises(ValueError, match=r"W_hh should have shape \(16, 4\)"):
        lstm_step_forward(x, h, c, W_ih, W_hh.T, b, b)
    with pytest.raises(ValueError, match=r"c_prev should have shape \(2, 4\)"):
        lstm_step_forward(x, h, torch.zeros(3, 4), W_ih, W_hh, b, b)
    _, _, caches = lstm_forward(torch.randn(5, 2, 3), h, c, W_ih, W_hh, b, b)
    with pytest.raises(ValueError, match=r"dhs should have shape"):
        lstm_backward(torch.zeros(4, 2, 4), caches)
    with pytest.raises(ValueError, match="at least one step"):
        lstm_backward(torch.zeros(0, 2, 4), [])
    with pytest.raises(ValueError, match=r"W_ih \(4H, I\)"):
        per_gate_parameters(torch.randn(6, 3), torch.randn(6, 4), torch.zeros(6), torch.zeros(6))
