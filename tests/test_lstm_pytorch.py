"""rnnbook.lstm, chapter 7: what only the LSTM has, the projection and the forget-gate bias.
The equivalence of every stack with nn.LSTM, projected ones included, is in test_recurrent.py."""

import pytest
import torch
from torch import nn

from rnnbook.gradients import set_forget_bias
from rnnbook.lstm import LSTMScratch, ProjectedLSTMScratch, StackedLSTMScratch, lstm_step, projected_lstm_step

# The oneDNN CPU kernel has no projection; PyTorch says so once and uses its own loop.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")


def test_single_layers_are_the_step_loops():
    torch.manual_seed(8)
    layer = ProjectedLSTMScratch(3, 5, 2)
    assert layer.W_hh.shape == (20, 2) and layer.W_hr.shape == (2, 5) and layer.W_ih.shape == (20, 3)
    x = torch.randn(6, 2, 3)
    outputs, (h_last, c_last) = layer(x)
    state = (torch.zeros(2, 2), torch.zeros(2, 5))
    for t in range(6):
        state = projected_lstm_step(x[t], state, layer.W_ih, layer.W_hh, layer.b_ih, layer.b_hh, layer.W_hr)
        torch.testing.assert_close(outputs[t], state[0])
    torch.testing.assert_close((h_last, c_last), state)
    h, c = lstm_step(x[0], (torch.zeros(2, 2), torch.zeros(2, 5)), layer.W_ih, layer.W_hh, layer.b_ih, layer.b_hh)
    torch.testing.assert_close(projected_lstm_step(x[0], (torch.zeros(2, 2), torch.zeros(2, 5)), layer.W_ih,
                                                   layer.W_hh, layer.b_ih, layer.b_hh, layer.W_hr),
                               (h @ layer.W_hr.T, c))
    first, carried = layer(x[:2])
    second, _ = layer(x[2:], carried)
    torch.testing.assert_close(torch.cat([first, second]), outputs)
    stacked = StackedLSTMScratch(3, 5, num_layers=2, bidirectional=True)
    assert all(type(part) is LSTMScratch for part in stacked.layers)
    assert [part.input_size for part in stacked.layers] == [3, 3, 10, 10]
    projected = StackedLSTMScratch(3, 5, num_layers=2, bidirectional=True, proj_size=2)
    assert [part.input_size for part in projected.layers] == [3, 3, 4, 4]


def test_initialisation_matches_pytorch_bounds():
    layer = ProjectedLSTMScratch(10, 100, 20)
    bound = 100 ** -0.5
    for parameter in layer.parameters():
        assert parameter.abs().max() <= bound and parameter.abs().max() > 0.9 * bound


def test_set_forget_bias_sets_the_total_of_every_layer_and_direction_and_nothing_else():
    torch.manual_seed(9)
    lstm = nn.LSTM(3, 6, num_layers=3, bidirectional=True, proj_size=2)
    H = 6
    before = {name: p.detach().clone() for name, p in lstm.named_parameters()}
    assert set_forget_bias(lstm, 1.0) is lstm
    suffixes = [f"_l{layer}{direction}" for layer in range(3) for direction in ("", "_reverse")]
    for suffix in suffixes:
        bias_ih, bias_hh = getattr(lstm, "bias_ih" + suffix), getattr(lstm, "bias_hh" + suffix)
        assert torch.equal(bias_ih[H:2 * H] + bias_hh[H:2 * H], torch.ones(H))
        assert torch.equal(bias_hh[H:2 * H], torch.zeros(H))
        for name, bias in (("bias_ih", bias_ih), ("bias_hh", bias_hh)):
            outside = torch.cat([bias[:H], bias[2 * H:]])
            original = before[name + suffix]
            assert torch.equal(outside, torch.cat([original[:H], original[2 * H:]]))
    for name, parameter in lstm.named_parameters():
        if not name.startswith("bias"):
            assert torch.equal(parameter, before[name])


def test_set_forget_bias_opens_the_forget_gate_of_the_scratch_copy():
    """With all weights zeroed, the forget gate of every layer is exactly sigmoid(value)."""
    torch.manual_seed(10)
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    with torch.no_grad():
        for name, parameter in lstm.named_parameters():
            parameter.zero_()
    set_forget_bias(lstm, 2.0)
    scratch = StackedLSTMScratch(3, 4, 2, True).copy_weights_from(lstm)
    c_0 = torch.randn(4, 5, 4)
    with torch.no_grad():
        _, (_, c_n) = scratch(torch.randn(1, 5, 3), (torch.zeros(4, 5, 4), c_0))
    # zero weights: i = o = sigmoid(0), g = tanh(0) = 0, so c_1 = sigmoid(2) * c_0
    torch.testing.assert_close(c_n, torch.sigmoid(torch.tensor(2.0)) * c_0)


def test_bad_arguments_and_shapes_are_clear_errors():
    for proj_size in (-1, 4, 5):
        with pytest.raises(ValueError, match="proj_size"):
            StackedLSTMScratch(3, 4, proj_size=proj_size)
    with pytest.raises(ValueError, match="proj_size"):
        ProjectedLSTMScratch(3, 4, 0)

    model = StackedLSTMScratch(3, 4, num_layers=2, bidirectional=True, proj_size=2)
    x = torch.randn(5, 6, 3)
    h_0, c_0 = torch.zeros(4, 6, 2), torch.zeros(4, 6, 4)
    model(x, (h_0, c_0))  # the right shapes work
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        model(torch.randn(5, 6, 4))
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        model(torch.randn(6, 3))
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        model(torch.randn(0, 6, 3))
    message = r"h_0 of shape .* = \(4, 6, 2\) and c_0 of shape .* = \(4, 6, 4\).*got a tensor of shape \(4, 6, 2\)"
    with pytest.raises(ValueError, match=message):
        model(x, h_0)  # h_0 alone instead of the tuple
    with pytest.raises(ValueError, match=r"got a tuple of \[\(6, 4, 2\), \(6, 4, 4\)\]"):
        model(x, (h_0.transpose(0, 1), c_0.transpose(0, 1)))  # batch-first states
    with pytest.raises(ValueError, match=r"got a tuple of \[\(4, 6, 4\), \(4, 6, 4\)\]"):
        model(x, (torch.zeros(4, 6, 4), c_0))  # h_0 not projected
    with pytest.raises(ValueError, match=r"got a tuple of \[\(4, 6, 2\)\]"):
        model(x, (h_0,))
    layer = ProjectedLSTMScratch(3, 4, 2)
    with pytest.raises(ValueError, match=r"h of shape \(B, P\) = \(6, 2\) and c of shape \(B, H\) = \(6, 4\)"):
        layer(x, (torch.zeros(6, 4), torch.zeros(6, 4)))
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        layer(torch.randn(5, 6, 2))
