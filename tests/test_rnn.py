"""rnnbook.rnn (chapters 2 and 5): the scratch RNNs equal nn.RNN for random sizes."""

import pytest
import torch
from torch import nn

from rnnbook.rnn import RNNScratch, StackedRNNScratch, rnn_step


def random_configuration(seed):
    """Random sizes that always include the degenerate cases somewhere in the sweep."""
    g = torch.Generator().manual_seed(seed)

    def pick(low, high):
        return int(torch.randint(low, high + 1, (1,), generator=g))

    return dict(I=pick(1, 9), H=pick(1, 9), L=pick(1, 3), bidirectional=bool(pick(0, 1)),
                nonlinearity=("tanh", "relu")[pick(0, 1)], T=pick(1, 7), B=pick(1, 4))


FIXED = [  # batch 1, length 1, input size != hidden size, and combinations
    dict(I=3, H=5, L=1, bidirectional=False, nonlinearity="tanh", T=1, B=1),
    dict(I=6, H=2, L=2, bidirectional=True, nonlinearity="tanh", T=1, B=3),
    dict(I=1, H=4, L=3, bidirectional=True, nonlinearity="relu", T=5, B=1),
]
CONFIGURATIONS = FIXED + [random_configuration(seed) for seed in range(12)]


@pytest.mark.parametrize("c", CONFIGURATIONS, ids=lambda c: "I{I}-H{H}-L{L}-bi{bidirectional:d}-{nonlinearity}-T{T}-B{B}".format(**c))
def test_stacked_scratch_equals_nn_rnn(c):
    torch.manual_seed(0)
    reference = nn.RNN(c["I"], c["H"], num_layers=c["L"], bidirectional=c["bidirectional"],
                       nonlinearity=c["nonlinearity"])
    scratch = StackedRNNScratch(c["I"], c["H"], c["L"], c["bidirectional"], c["nonlinearity"]).copy_weights_from(reference)
    D = 2 if c["bidirectional"] else 1
    x, h_0 = torch.randn(c["T"], c["B"], c["I"]), torch.randn(c["L"] * D, c["B"], c["H"])
    for initial in (None, h_0):
        expected, ours = reference(x, initial), scratch(x, initial)
        torch.testing.assert_close(ours[0], expected[0])
        torch.testing.assert_close(ours[1], expected[1])


def test_gradients_match_nn_rnn():
    torch.manual_seed(1)
    reference = nn.RNN(4, 3, num_layers=2, bidirectional=True)
    scratch = StackedRNNScratch(4, 3, 2, True).copy_weights_from(reference)
    x = torch.randn(5, 2, 4)
    reference(x)[0].square().sum().backward()
    scratch(x)[0].square().sum().backward()
    torch.testing.assert_close(scratch.layers[3].W_hh.grad, reference.weight_hh_l1_reverse.grad)
    torch.testing.assert_close(scratch.layers[0].W_ih.grad, reference.weight_ih_l0.grad)


def test_single_layer_scratch_is_the_step_loop_and_carries_state():
    torch.manual_seed(2)
    layer = RNNScratch(3, 4)
    x = torch.randn(6, 2, 3)
    outputs, last = layer(x)
    h = torch.zeros(2, 4)
    for t in range(6):
        h = rnn_step(x[t], h, layer.W_ih, layer.W_hh, layer.b_ih, layer.b_hh)
    torch.testing.assert_close(last, h)
    first, state = layer(x[:2])
    second, _ = layer(x[2:], state)
    torch.testing.assert_close(torch.cat([first, second]), outputs)


def test_initialisation_matches_pytorch_bounds():
    layer = RNNScratch(10, 100)
    bound = 100 ** -0.5
    for parameter in layer.parameters():
        assert parameter.abs().max() <= bound and parameter.abs().max() > 0.9 * bound


def test_bad_inputs_give_clear_errors():
    layer = RNNScratch(3, 4)
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        layer(torch.randn(5, 2, 4))
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        layer(torch.randn(0, 2, 3))
    with pytest.raises(ValueError, match=r"state of shape \(B, H\) = \(2, 4\)"):
        layer(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNScratch(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="positive"):
        RNNScratch(0, 4)
    stacked = StackedRNNScratch(3, 4, num_layers=2, bidirectional=True)
    with pytest.raises(ValueError, match=r"h_0 of shape .* \(4, 2, 4\)"):
        stacked(torch.randn(5, 2, 3), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="configurations differ"):
        stacked.copy_weights_from(nn.RNN(3, 4, num_layers=2))
    with pytest.raises(ValueError, match="num_layers"):
        StackedRNNScratch(3, 4, num_layers=0)
