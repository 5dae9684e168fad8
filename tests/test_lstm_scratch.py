"""rnnbook.lstm and rnnbook.lstm_notations (chapter 6): what only the LSTM has, the gate
order, the three notations and the forget-bias helper. The layer's equivalence with nn.LSTM
is in test_recurrent.py and the hand-written backward pass in test_bptt.py."""

import pytest
import torch
from torch import nn

from rnnbook.bptt import lstm_backward, lstm_forward, lstm_step_forward
from rnnbook.lstm import LSTMScratch, lstm_step, set_scratch_forget_bias
from rnnbook.lstm_notations import (concatenated_parameters, lstm_step_concatenated, lstm_step_per_gate,
                                    lstm_step_row_form, per_gate_parameters, row_form_parameters)



def random_sizes(seed):
    g = torch.Generator().manual_seed(seed)

    def pick(low, high):
        return int(torch.randint(low, high + 1, (1,), generator=g))

    return dict(T=pick(1, 8), B=pick(1, 5), I=pick(1, 9), H=pick(1, 9))


FIXED = [dict(T=1, B=1, I=3, H=5), dict(T=6, B=1, I=7, H=2), dict(T=1, B=4, I=1, H=1), dict(T=5, B=3, I=4, H=4)]
SIZES = FIXED + [random_sizes(seed) for seed in range(10)]
IDS = ["T{T}-B{B}-I{I}-H{H}".format(**s) for s in SIZES]


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


def test_bad_inputs_to_the_backward_pass_and_the_notations_give_clear_errors():
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
