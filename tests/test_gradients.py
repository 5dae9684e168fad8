"""rnnbook.gradients (chapter 4): input-gradient norms and the LSTM forget-gate bias."""

import pytest
import torch
from torch import nn

from rnnbook.gradients import input_gradient_norms, set_forget_bias
from rnnbook.rnn import RNNScratch


class LinearRNN(nn.Module):
    """h_t = W_hh h_{t-1} + W_ih x_t, whose input Jacobians are W_hh^(T-1-t) W_ih exactly."""

    def __init__(self, W_ih, W_hh):
        super().__init__()
        self.W_ih, self.W_hh = nn.Parameter(W_ih), nn.Parameter(W_hh)

    def forward(self, inputs, state=None):
        state = inputs.new_zeros(inputs.shape[1], self.W_hh.shape[0])
        outputs = []
        for x in inputs:
            state = state @ self.W_hh.T + x @ self.W_ih.T
            outputs.append(state)
        return torch.stack(outputs), state


def reference_norms(layer, inputs):
    """(T, B) Frobenius norms of d h_T / d x_t from the full Jacobian of each sequence."""
    T, B, _ = inputs.shape
    norms = torch.empty(T, B, dtype=torch.float64)
    for b in range(B):
        jacobian = torch.autograd.functional.jacobian(lambda x: layer(x[:, None])[0][-1, 0], inputs[:, b])
        norms[:, b] = jacobian.double().square().sum(dim=(0, 2)).sqrt()  # jacobian: (H, T, I)
    return norms


@pytest.mark.parametrize("a", [0.5, 0.9, 1.0, 1.3])
def test_linear_rnn_with_scaled_identity_matches_the_closed_form(a):
    torch.manual_seed(0)
    T, B, I, H = 9, 3, 5, 4
    W_ih = torch.randn(H, I, dtype=torch.float64)
    layer = LinearRNN(W_ih.clone(), a * torch.eye(H, dtype=torch.float64))
    norms = input_gradient_norms(layer, torch.randn(T, B, I, dtype=torch.float64), reduction="none")
    distance = torch.arange(T - 1, -1, -1, dtype=torch.float64)
    expected = a ** distance * torch.linalg.matrix_norm(W_ih)
    assert norms.shape == (T, B) and norms.dtype == torch.float64
    torch.testing.assert_close(norms, expected[:, None].expand(T, B))


def test_linear_rnn_with_a_full_matrix_matches_matrix_powers():
    torch.manual_seed(1)
    T, I, H = 6, 2, 5
    W_ih, W_hh = torch.randn(H, I, dtype=torch.float64), torch.randn(H, H, dtype=torch.float64) / 2
    norms = input_gradient_norms(LinearRNN(W_ih.clone(), W_hh.clone()), torch.randn(T, 1, I, dtype=torch.float64))
    expected = torch.stack([torch.linalg.matrix_norm(torch.linalg.matrix_power(W_hh, T - 1 - t) @ W_ih)
                            for t in range(T)])
    torch.testing.assert_close(norms, expected)


@pytest.mark.parametrize("make_layer", [
    lambda I, H: RNNScratch(I, H),
    lambda I, H: nn.RNN(I, H),
    lambda I, H: nn.LSTM(I, H),
    lambda I, H: nn.GRU(I, H),
    lambda I, H: nn.LSTM(I, H, num_layers=2),
    lambda I, H: nn.LSTM(I, H, proj_size=2),
], ids=["RNNScratch", "nn.RNN", "nn.LSTM", "nn.GRU", "two-layer nn.LSTM", "nn.LSTM with proj_size"])
def test_matches_the_full_jacobian_for_every_kind_of_layer(make_layer):
    torch.manual_seed(2)
    T, B, I, H = 7, 3, 5, 4  # all different, so no transposition can pass by accident
    layer = make_layer(I, H).double()
    inputs = torch.randn(T, B, I, dtype=torch.float64)
    norms = input_gradient_norms(layer, inputs, reduction="none")
    torch.testing.assert_close(norms, reference_norms(layer, inputs))
    torch.testing.assert_close(input_gradient_norms(layer, inputs), norms.median(dim=1).values)


def test_batch_of_one_and_sequence_of_one():
    torch.manual_seed(3)
    layer = RNNScratch(3, 6).double()
    x = torch.randn(1, 1, 3, dtype=torch.float64)
    norms = input_gradient_norms(layer, x)
    h = layer(x)[0][0, 0]
    expected = torch.linalg.matrix_norm(torch.diag(1 - h ** 2) @ layer.W_ih)  # tanh'(a) W_ih
    assert norms.shape == (1,)
    torch.testing.assert_close(norms[0], expected.detach())


def test_examples_in_a_batch_are_measured_independently():
    torch.manual_seed(4)
    layer = nn.GRU(3, 5)
    inputs = torch.randn(8, 4, 3)
    together = input_gradient_norms(layer, inputs, reduction="none")
    alone = torch.cat([input_gradient_norms(layer, inputs[:, b:b + 1], reduction="none") for b in range(4)], dim=1)
    torch.testing.assert_close(together, alone)


def test_has_no_side_effects_and_works_under_no_grad():
    torch.manual_seed(5)
    layer = nn.LSTM(3, 4)
    inputs = torch.randn(6, 2, 3)
    with torch.no_grad():
        norms = input_gradient_norms(layer, inputs)
    assert norms.shape == (6,) and torch.isfinite(norms).all()
    assert all(parameter.grad is None for parameter in layer.parameters())
    assert not inputs.requires_grad


def test_vanishing_at_default_initialisation():
    torch.manual_seed(6)
    norms = input_gradient_norms(RNNScratch(8, 32), torch.randn(60, 4, 8))
    assert norms[0] < 1e-6 * norms[-1]  # 59 steps back versus the current input


@pytest.mark.parametrize("inputs, message", [
    (torch.randn(5, 3), "shape \\(T, B, I\\)"),
    (torch.randn(0, 2, 3), "shape \\(T, B, I\\)"),
    (torch.randn(4, 0, 3), "shape \\(T, B, I\\)"),
    ([[[1.0, 2.0, 3.0]]], "shape \\(T, B, I\\)"),
    (torch.ones(4, 2, 3, dtype=torch.long), "floating point"),
])
def test_bad_inputs_are_rejected(inputs, message):
    with pytest.raises(ValueError, match=message):
        input_gradient_norms(nn.RNN(3, 4), inputs)


@pytest.mark.parametrize("layer, message", [
    (nn.LSTM(3, 4, batch_first=True), "time-major"),
    (nn.GRU(3, 4, bidirectional=True), "unidirectional"),
    (nn.LSTM(3, 4, num_layers=2, dropout=0.5), "dropout"),
])
def test_layers_it_cannot_measure_are_rejected(layer, message):
    with pytest.raises(ValueError, match=message):
        input_gradient_norms(layer, torch.randn(4, 2, 3))


def test_dropout_layer_in_eval_mode_is_accepted():
    layer = nn.LSTM(3, 4, num_layers=2, dropout=0.5).eval()
    assert input_gradient_norms(layer, torch.randn(4, 2, 3)).shape == (4,)


def test_bad_reduction_is_rejected():
    with pytest.raises(ValueError, match="reduction"):
        input_gradient_norms(nn.RNN(3, 4), torch.randn(4, 2, 3), reduction="mean")


def test_output_that_is_not_the_hidden_state_is_rejected():
    class Doubled(nn.Module):
        """Returns outputs whose size changes with the batch: not a recurrent layer."""

        def forward(self, inputs):
            return inputs.repeat(1, 2, 1), None

    with pytest.raises(ValueError, match="expected outputs of shape"):
        input_gradient_norms(Doubled(), torch.randn(4, 2, 3))


def test_set_forget_bias_sets_the_total_bias_of_every_layer_and_direction():
    torch.manual_seed(7)
    H = 5
    lstm = nn.LSTM(3, H, num_layers=2, bidirectional=True)
    before = {name: parameter.detach().clone() for name, parameter in lstm.named_parameters()}
    assert set_forget_bias(lstm, 1.5) is lstm
    suffixes = [f"l{layer}{direction}" for layer in range(2) for direction in ("", "_reverse")]
    for suffix in suffixes:
        total = getattr(lstm, f"bias_ih_{suffix}") + getattr(lstm, f"bias_hh_{suffix}")
        torch.testing.assert_close(total[H:2 * H], torch.full((H,), 1.5))
        for name in (f"bias_ih_{suffix}", f"bias_hh_{suffix}"):
            after = getattr(lstm, name).detach()
            for chunk in (0, 2, 3):  # the i, g and o chunks are untouched
                torch.testing.assert_close(after[chunk * H:(chunk + 1) * H], before[name][chunk * H:(chunk + 1) * H])
    for name, parameter in lstm.named_parameters():
        if name.startswith("weight"):
            assert torch.equal(parameter, before[name])


def test_set_forget_bias_changes_the_forget_gate_value():
    torch.manual_seed(8)
    H = 4
    lstm = set_forget_bias(nn.LSTM(2, H), 2.0)
    with torch.no_grad():
        for weight in (lstm.weight_ih_l0, lstm.weight_hh_l0):
            weight.zero_()
        x = torch.randn(1, 1, 2)
        _, (h, c) = lstm(x, (torch.zeros(1, 1, H), torch.ones(1, 1, H)))
    # with zero weights: i = sigmoid(b_i), g = tanh(b_g), f = sigmoid(2), so c = f * 1 + i * g
    b = lstm.bias_ih_l0 + lstm.bias_hh_l0
    expected = torch.sigmoid(torch.tensor(2.0)) + torch.sigmoid(b[:H]) * torch.tanh(b[2 * H:3 * H])
    torch.testing.assert_close(c[0, 0], expected.detach())


@pytest.mark.parametrize("module, message", [
    (nn.GRU(3, 4), "expects an nn.LSTM"),
    (nn.LSTM(3, 4, bias=False), "bias=False"),
])
def test_set_forget_bias_rejects_what_it_cannot_set(module, message):
    with pytest.raises(ValueError, match=message):
        set_forget_bias(module, 1.0)


def test_set_gate_bias_sets_one_block_of_every_layer_and_direction():
    from rnnbook.gradients import set_gate_bias

    lstm = set_gate_bias(nn.LSTM(3, 4, num_layers=2, bidirectional=True), 3, -2.0)  # the o block
    for suffix in ("_l0", "_l0_reverse", "_l1", "_l1_reverse"):
        ih, hh = getattr(lstm, f"bias_ih{suffix}"), getattr(lstm, f"bias_hh{suffix}")
        assert torch.equal((ih + hh)[12:16], torch.full((4,), -2.0)) and torch.equal(hh[12:16], torch.zeros(4))
    after = set_gate_bias(nn.GRU(3, 4), 2, 0.5)  # the n block
    assert torch.equal((after.bias_ih_l0 + after.bias_hh_l0)[8:12], torch.full((4,), 0.5))
