"""rnnbook.lstm, chapter 7: StackedLSTMScratch equals nn.LSTM; the forget bias is set right."""

import warnings

import pytest
import torch
from torch import nn

from rnnbook.gradients import set_forget_bias
from rnnbook.lstm import LSTMScratch, ProjectedLSTMScratch, StackedLSTMScratch, lstm_step, projected_lstm_step

# The oneDNN CPU kernel has no projection; PyTorch says so once and uses its own loop.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")


def random_configuration(seed):
    """Random sizes; the fixed list below makes sure the degenerate cases are always in."""
    g = torch.Generator().manual_seed(seed)

    def pick(low, high):
        return int(torch.randint(low, high + 1, (1,), generator=g))

    H = pick(2, 9)
    return dict(I=pick(1, 9), H=H, L=pick(1, 3), bidirectional=bool(pick(0, 1)),
                P=pick(0, 1) * pick(1, H - 1), T=pick(1, 7), B=pick(1, 4))


FIXED = [  # batch 1, length 1, input size != hidden size, projection, and combinations
    dict(I=3, H=5, L=1, bidirectional=False, P=0, T=1, B=1),
    dict(I=6, H=2, L=2, bidirectional=True, P=0, T=1, B=3),
    dict(I=1, H=4, L=3, bidirectional=True, P=0, T=5, B=1),
    dict(I=4, H=6, L=1, bidirectional=False, P=2, T=6, B=2),
    dict(I=7, H=5, L=3, bidirectional=True, P=4, T=4, B=1),
    dict(I=2, H=3, L=2, bidirectional=False, P=1, T=1, B=1),
]
CONFIGURATIONS = FIXED + [random_configuration(seed) for seed in range(14)]


def make_pair(c, seed=0, dropout=0.0):
    torch.manual_seed(seed)
    reference = nn.LSTM(c["I"], c["H"], num_layers=c["L"], bidirectional=c["bidirectional"],
                        proj_size=c["P"], dropout=dropout)
    scratch = StackedLSTMScratch(c["I"], c["H"], c["L"], c["bidirectional"], c["P"], dropout)
    return reference, scratch.copy_weights_from(reference)


def random_state(c):
    D = 2 if c["bidirectional"] else 1
    return torch.randn(c["L"] * D, c["B"], c["P"] or c["H"]), torch.randn(c["L"] * D, c["B"], c["H"])


@pytest.mark.parametrize("c", CONFIGURATIONS,
                         ids=lambda c: "I{I}-H{H}-L{L}-bi{bidirectional:d}-P{P}-T{T}-B{B}".format(**c))
def test_stacked_scratch_equals_nn_lstm(c):
    reference, scratch = make_pair(c)
    x = torch.randn(c["T"], c["B"], c["I"])
    for state in (None, random_state(c)):
        with torch.no_grad():
            expected_output, (expected_h, expected_c) = reference(x, state)
            output, (h_n, c_n) = scratch(x, state)
        D, H_out = (2 if c["bidirectional"] else 1), c["P"] or c["H"]
        assert output.shape == (c["T"], c["B"], D * H_out)
        assert h_n.shape == (c["L"] * D, c["B"], H_out) and c_n.shape == (c["L"] * D, c["B"], c["H"])
        torch.testing.assert_close(output, expected_output)
        torch.testing.assert_close(h_n, expected_h)
        torch.testing.assert_close(c_n, expected_c)


@pytest.mark.parametrize("c", FIXED[2:5], ids=["bidirectional", "projected", "projected-bidirectional"])
def test_gradients_match_nn_lstm_for_every_parameter_and_the_initial_state(c):
    reference, scratch = make_pair(c, seed=1)
    x = torch.randn(c["T"], c["B"], c["I"])
    h_0, c_0 = random_state(c)
    grads = []
    for model in (reference, scratch):
        model.zero_grad()
        h_start, c_start = h_0.clone().requires_grad_(), c_0.clone().requires_grad_()
        output, (h_n, c_n) = model(x, (h_start, c_start))
        (output.square().sum() + h_n.sum() + c_n.square().sum()).backward()
        grads.append((h_start.grad, c_start.grad))
    torch.testing.assert_close(grads[1], grads[0])
    names = {"W_ih": "weight_ih", "W_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh", "W_hr": "weight_hr"}
    D = scratch.num_directions
    compared = 0
    for index, layer in enumerate(scratch.layers):
        suffix = f"_l{index // D}" + ("_reverse" if index % D else "")
        for ours, theirs in names.items():
            if hasattr(layer, ours):
                torch.testing.assert_close(getattr(layer, ours).grad, getattr(reference, theirs + suffix).grad)
                compared += 1
    assert compared == len(list(reference.parameters()))


def test_copy_is_a_copy_and_batch_first_needs_only_a_transpose():
    torch.manual_seed(4)
    batch_first = nn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2, batch_first=True)
    scratch = StackedLSTMScratch(3, 5, 2, True, 2).copy_weights_from(batch_first)
    x = torch.randn(4, 6, 3)  # (B, T, I)
    with torch.no_grad():
        output, (h_n, c_n) = batch_first(x)
        ours, (our_h, our_c) = scratch(x.transpose(0, 1))
    torch.testing.assert_close(ours.transpose(0, 1), output)
    torch.testing.assert_close((our_h, our_c), (h_n, c_n))
    with torch.no_grad():
        batch_first.weight_hr_l1_reverse.add_(1.0)  # the scratch model holds copies, not views
    assert not torch.equal(scratch.layers[3].W_hr, batch_first.weight_hr_l1_reverse)


def test_training_mode_dropout_matches_nn_lstm_on_the_cpu_with_the_same_seed():
    c = dict(I=4, H=6, L=3, bidirectional=True, P=0, T=5, B=3)
    reference, scratch = make_pair(c, seed=5, dropout=0.4)
    reference.train()
    scratch.train()
    x = torch.randn(c["T"], c["B"], c["I"])
    with torch.no_grad():
        torch.manual_seed(6)
        expected = reference(x)
        torch.manual_seed(6)
        ours = scratch(x)
        torch.manual_seed(7)
        other_masks = scratch(x)
        scratch.eval()
        reference.eval()
        evaluation = scratch(x), reference(x)
    torch.testing.assert_close(ours, expected)
    assert not torch.allclose(other_masks[0], ours[0])  # dropout really acts in training mode
    torch.testing.assert_close(evaluation[0], evaluation[1])
    torch.testing.assert_close(ours[1][0][:2], evaluation[0][1][0][:2])  # layer 0 sees no dropout


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


def test_configuration_mismatches_are_clear_errors():
    scratch = StackedLSTMScratch(3, 4, num_layers=2, bidirectional=True, proj_size=2)
    good = nn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2)
    assert scratch.copy_weights_from(good) is scratch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nn.LSTM warns about dropout with one layer
        mismatches = [
            nn.LSTM(2, 4, num_layers=2, bidirectional=True, proj_size=2),
            nn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2),
            nn.LSTM(3, 4, num_layers=1, bidirectional=True, proj_size=2),
            nn.LSTM(3, 4, num_layers=2, bidirectional=False, proj_size=2),
            nn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=0),
            nn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, dropout=0.1),
            nn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, bias=False),
        ]
    for other in mismatches:
        with pytest.raises(ValueError, match="configurations differ"):
            scratch.copy_weights_from(other)
    with pytest.raises(ValueError, match="expects an nn.LSTM"):
        scratch.copy_weights_from(nn.GRU(3, 4, num_layers=2, bidirectional=True))


def test_bad_arguments_and_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="num_layers"):
        StackedLSTMScratch(3, 4, num_layers=0)
    for proj_size in (-1, 4, 5):
        with pytest.raises(ValueError, match="proj_size"):
            StackedLSTMScratch(3, 4, proj_size=proj_size)
    with pytest.raises(ValueError, match="proj_size"):
        ProjectedLSTMScratch(3, 4, 0)
    with pytest.raises(ValueError, match="dropout"):
        StackedLSTMScratch(3, 4, num_layers=2, dropout=1.5)

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
    with pytest.raises(ValueError, match=r"h_0 \(4, 6, 2\).*c_0 \(4, 6, 4\).*got a Tensor of shape \(4, 6, 2\)"):
        model(x, h_0)  # h_0 alone instead of the tuple
    with pytest.raises(ValueError, match=r"got \[\(6, 4, 2\), \(6, 4, 4\)\]"):
        model(x, (h_0.transpose(0, 1), c_0.transpose(0, 1)))  # batch-first states
    with pytest.raises(ValueError, match=r"got \[\(4, 6, 4\), \(4, 6, 4\)\]"):
        model(x, (torch.zeros(4, 6, 4), c_0))  # h_0 not projected
    with pytest.raises(ValueError, match=r"got \[\(4, 6, 2\)\]"):
        model(x, (h_0,))
    layer = ProjectedLSTMScratch(3, 4, 2)
    with pytest.raises(ValueError, match=r"h \(6, 2\).*c \(6, 4\)"):
        layer(x, (torch.zeros(6, 4), torch.zeros(6, 4)))
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        layer(torch.randn(5, 6, 2))
