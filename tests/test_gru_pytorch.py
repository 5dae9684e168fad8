"""rnnbook.gru, chapter 10: StackedGRUScratch equals nn.GRU for random sizes, gradients included."""

import pytest
import torch
from torch import nn

from rnnbook.gru import GRUScratch, StackedGRUScratch


def random_configuration(seed):
    """Random sizes; the fixed list below makes sure the degenerate cases are always in."""
    g = torch.Generator().manual_seed(seed)

    def pick(low, high):
        return int(torch.randint(low, high + 1, (1,), generator=g))

    return dict(I=pick(1, 9), H=pick(1, 9), L=pick(1, 3), bidirectional=bool(pick(0, 1)), T=pick(1, 7), B=pick(1, 4))


FIXED = [  # batch 1, length 1, input size != hidden size, layers, directions, and combinations
    dict(I=3, H=5, L=1, bidirectional=False, T=1, B=1),
    dict(I=6, H=2, L=2, bidirectional=True, T=1, B=3),
    dict(I=1, H=4, L=3, bidirectional=True, T=5, B=1),
    dict(I=7, H=3, L=3, bidirectional=False, T=6, B=2),
    dict(I=4, H=4, L=1, bidirectional=True, T=3, B=1),
]
CONFIGURATIONS = FIXED + [random_configuration(seed) for seed in range(14)]
NAMES = {"W_ih": "weight_ih", "W_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}


def make_pair(c, seed=0, dropout=0.0):
    torch.manual_seed(seed)
    reference = nn.GRU(c["I"], c["H"], num_layers=c["L"], bidirectional=c["bidirectional"], dropout=dropout)
    scratch = StackedGRUScratch(c["I"], c["H"], c["L"], c["bidirectional"], dropout)
    return reference, scratch.copy_weights_from(reference)


def suffix(index, num_directions):
    return f"_l{index // num_directions}" + ("_reverse" if index % num_directions else "")


@pytest.mark.parametrize("c", CONFIGURATIONS,
                         ids=lambda c: "I{I}-H{H}-L{L}-bi{bidirectional:d}-T{T}-B{B}".format(**c))
def test_stacked_scratch_equals_nn_gru(c):
    reference, scratch = make_pair(c)
    D = 2 if c["bidirectional"] else 1
    x, h_0 = torch.randn(c["T"], c["B"], c["I"]), torch.randn(c["L"] * D, c["B"], c["H"])
    for initial in (None, h_0):
        with torch.no_grad():
            expected_output, expected_h = reference(x, initial)
            output, h_n = scratch(x, initial)
        assert output.shape == (c["T"], c["B"], D * c["H"]) and h_n.shape == (c["L"] * D, c["B"], c["H"])
        torch.testing.assert_close(output, expected_output)
        torch.testing.assert_close(h_n, expected_h)


@pytest.mark.parametrize("c", [FIXED[2], FIXED[3], random_configuration(100)],
                         ids=lambda c: "I{I}-H{H}-L{L}-bi{bidirectional:d}-T{T}-B{B}".format(**c))
def test_gradients_match_nn_gru_for_every_parameter_and_the_initial_state(c):
    reference, scratch = make_pair(c, seed=1)
    D = 2 if c["bidirectional"] else 1
    x = torch.randn(c["T"], c["B"], c["I"])
    h_0 = torch.randn(c["L"] * D, c["B"], c["H"], requires_grad=True)
    initial_gradients = []
    for model in (reference, scratch):
        output, h_n = model(x, h_0)
        (output.square().sum() + h_n.sum()).backward()
        initial_gradients.append(h_0.grad.clone())
        h_0.grad = None
    torch.testing.assert_close(*initial_gradients)
    compared = 0
    for index, layer in enumerate(scratch.layers):
        for ours, theirs in NAMES.items():
            torch.testing.assert_close(getattr(layer, ours).grad, getattr(reference, theirs + suffix(index, D)).grad)
            compared += 1
    assert compared == len(list(reference.parameters()))


def test_layers_are_ordered_like_h_n_and_sized_like_nn_gru():
    scratch = StackedGRUScratch(5, 4, num_layers=3, bidirectional=True)
    reference = nn.GRU(5, 4, num_layers=3, bidirectional=True)
    assert len(scratch.layers) == 6 and all(isinstance(layer, GRUScratch) for layer in scratch.layers)
    for index, layer in enumerate(scratch.layers):
        for ours, theirs in NAMES.items():
            assert getattr(layer, ours).shape == getattr(reference, theirs + suffix(index, 2)).shape
    assert sum(p.numel() for p in scratch.parameters()) == sum(p.numel() for p in reference.parameters())


def test_copied_weights_are_copies_not_shared():
    reference, scratch = make_pair(dict(I=3, H=4, L=2, bidirectional=True))
    with torch.no_grad():
        scratch.layers[3].W_hh.add_(1.0)
    assert not torch.equal(scratch.layers[3].W_hh, reference.weight_hh_l1_reverse)


def test_batch_first_module_equals_transposed_scratch():
    torch.manual_seed(2)
    reference = nn.GRU(5, 3, num_layers=2, bidirectional=True, batch_first=True)
    scratch = StackedGRUScratch(5, 3, 2, bidirectional=True).copy_weights_from(reference)
    x = torch.randn(4, 6, 5)  # (B, T, I)
    with torch.no_grad():
        output, h_n = reference(x)
        ours, our_h = scratch(x.transpose(0, 1))
    torch.testing.assert_close(ours.transpose(0, 1), output)
    torch.testing.assert_close(our_h, h_n)


def test_state_carries_over_between_chunks():
    torch.manual_seed(3)
    scratch = StackedGRUScratch(3, 4, num_layers=2, bidirectional=False)
    x = torch.randn(8, 2, 3)
    with torch.no_grad():
        whole, h_whole = scratch(x)
        first, h_first = scratch(x[:5])
        second, h_second = scratch(x[5:], h_first)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    torch.testing.assert_close(h_second, h_whole)


def test_training_mode_dropout_matches_nn_gru_on_the_cpu_with_the_same_seed():
    c = dict(I=4, H=5, L=3, bidirectional=True, T=6, B=3)
    reference, scratch = make_pair(c, seed=5, dropout=0.4)
    reference.train()
    scratch.train()
    x = torch.randn(c["T"], c["B"], c["I"])
    with torch.no_grad():
        torch.manual_seed(11)
        expected = reference(x)
        torch.manual_seed(11)
        ours = scratch(x)
        torch.manual_seed(12)
        other_masks = scratch(x)
        evaluation = scratch.eval()(x), reference.eval()(x)
    torch.testing.assert_close(ours, expected)
    assert not torch.allclose(other_masks[0], ours[0])  # dropout really acts in training mode
    torch.testing.assert_close(evaluation[0], evaluation[1])  # and not in evaluation mode
    torch.testing.assert_close(ours[1][:2], evaluation[0][1][:2])  # layer 0 sees no dropout


def test_configuration_mismatch_is_a_clear_error():
    scratch = StackedGRUScratch(3, 4, num_layers=2, bidirectional=True)
    for other in (nn.GRU(3, 4, num_layers=2), nn.GRU(3, 5, num_layers=2, bidirectional=True),
                  nn.GRU(2, 4, num_layers=2, bidirectional=True), nn.GRU(3, 4, num_layers=1, bidirectional=True),
                  nn.GRU(3, 4, num_layers=2, bidirectional=True, dropout=0.2),
                  nn.GRU(3, 4, num_layers=2, bidirectional=True, bias=False)):
        with pytest.raises(ValueError, match="configurations differ"):
            scratch.copy_weights_from(other)
    with pytest.raises(ValueError, match="expects an nn.GRU, got LSTM"):
        scratch.copy_weights_from(nn.LSTM(3, 4, num_layers=2, bidirectional=True))
    scratch.copy_weights_from(nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True))  # allowed


def test_bad_shapes_give_clear_errors():
    scratch = StackedGRUScratch(3, 4, num_layers=2, bidirectional=True)
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        scratch(torch.randn(5, 2, 4))  # wrong input size
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        scratch(torch.randn(5, 3))  # unbatched input is not supported
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        scratch(torch.randn(0, 2, 3))  # empty sequence
    with pytest.raises(ValueError, match=r"\(4, 2, 4\)"):
        scratch(torch.randn(5, 2, 3), torch.zeros(2, 4, 4))  # batch-first h_0
    with pytest.raises(ValueError, match=r"not a tuple"):
        scratch(torch.randn(5, 2, 3), (torch.zeros(4, 2, 4), torch.zeros(4, 2, 4)))  # LSTM-style state
    with pytest.raises(ValueError, match="num_layers"):
        StackedGRUScratch(3, 4, num_layers=0)
    with pytest.raises(ValueError, match="dropout"):
        StackedGRUScratch(3, 4, num_layers=2, dropout=1.5)


def test_gru_regressor_reads_out_the_last_step_batch_first():
    from rnnbook.gru import GRURegressor

    torch.manual_seed(0)
    model = GRURegressor(3, 5, output_size=2, num_layers=2)
    x = torch.randn(4, 6, 3)  # (B, T, I)
    output, h_n = model.gru(x)
    torch.testing.assert_close(model(x), model.head(h_n[-1]))
    assert model(x).shape == (4, 2)
    # the read-out sees the whole sequence: changing the first step changes the prediction
    changed = x.clone()
    changed[:, 0] += 1.0
    assert not torch.allclose(model(changed), model(x))


def test_gru_regressor_refuses_bad_inputs():
    from rnnbook.gru import GRURegressor

    model = GRURegressor(3, 5)
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        model(torch.randn(4, 6, 2))
    with pytest.raises(ValueError, match="T >= 1"):
        model(torch.randn(4, 0, 3))
    with pytest.raises(ValueError, match="positive"):
        GRURegressor(3, 0)
