"""Tests for rnnbook.scan (chapter 17): the linear recurrence by loop, scan and log space,
minGRU, minLSTM and the parity task, with planted bugs the checks must catch."""

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck

from rnnbook import scan
from rnnbook.experiments import RecurrentReadout
from rnnbook.scan import (MinGRU, MinLSTM, StackedMinGRU, combine, linear_recurrence_log, linear_recurrence_loop,
                          linear_recurrence_scan, parity_task, scan_rounds)
from rnnbook.training import CharLM


def recurrence_inputs(T, shape=(3, 4), seed=0, positive=False):
    generator = torch.Generator().manual_seed(seed)
    a = torch.rand(T, *shape, dtype=torch.float64, generator=generator)
    b = torch.randn(T, *shape, dtype=torch.float64, generator=generator)
    h0 = torch.randn(shape, dtype=torch.float64, generator=generator)
    return (a, b.abs(), h0.abs()) if positive else (a, b, h0)


def by_hand(a, b, h0):
    """The recurrence written out for one scalar sequence, as the reference."""
    h, states = float(h0), []
    for a_t, b_t in zip(a.tolist(), b.tolist()):
        h = a_t * h + b_t
        states.append(h)
    return torch.tensor(states, dtype=torch.float64)


def test_loop_matches_the_recurrence_written_out():
    a, b, h0 = recurrence_inputs(6, shape=())
    torch.testing.assert_close(linear_recurrence_loop(a, b, h0), by_hand(a, b, h0), rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(linear_recurrence_loop(a, b), by_hand(a, b, torch.tensor(0.0)), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("T", [1, 2, 3, 8, 31, 64, 100])
def test_scan_and_log_space_equal_the_loop(T):
    a, b, h0 = recurrence_inputs(T, seed=T)
    for start in (None, h0):
        torch.testing.assert_close(linear_recurrence_scan(a, b, start), linear_recurrence_loop(a, b, start),
                                   rtol=1e-12, atol=1e-12)
    a, b, h0 = recurrence_inputs(T, seed=T, positive=True)
    for start in (None, h0):
        expected = linear_recurrence_loop(a, b, start)
        logged = linear_recurrence_log(a.log(), b.log(), None if start is None else start.log())
        torch.testing.assert_close(logged, expected, rtol=1e-12, atol=0.0)


def test_gradients_pass_gradcheck():
    a, b, h0 = (part.requires_grad_() for part in recurrence_inputs(11, shape=(2, 3), positive=True))
    assert gradcheck(linear_recurrence_scan, (a, b, h0))
    assert gradcheck(lambda a, b, h0: linear_recurrence_log(a.log(), b.log(), h0.log()), (a, b, h0))


def test_combine_is_associative_and_not_commutative():
    p, q, r = [(torch.rand(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)) for _ in range(3)]
    for left, right in zip(combine(combine(p, q), r), combine(p, combine(q, r))):
        torch.testing.assert_close(left, right, rtol=1e-14, atol=1e-14)
    assert not torch.allclose(combine(p, q)[1], combine(q, p)[1])


def test_scan_rounds():
    assert [scan_rounds(T) for T in (1, 2, 3, 4, 5, 64, 65, 4096)] == [0, 1, 2, 2, 3, 6, 7, 12]
    with pytest.raises(ValueError, match="positive"):
        scan_rounds(0)


def test_bad_shapes_are_rejected():
    a, b, h0 = recurrence_inputs(5)
    for recurrence in (linear_recurrence_loop, linear_recurrence_scan, linear_recurrence_log):
        with pytest.raises(ValueError, match="one shape"):
            recurrence(a, b[:4])
        with pytest.raises(ValueError, match="shape of one step"):
            recurrence(a, b, h0[0])


# Planted bugs: each broken variant must fail the check that the real one passes.

def scan_with_operands_swapped(a, b, h0=None):
    """The real scan, with its combine called as combine(later, earlier) (patched in the module)."""
    original = scan.combine
    scan.combine = lambda earlier, later: original(later, earlier)
    try:
        return linear_recurrence_scan(a, b, h0)
    finally:
        scan.combine = original


def scan_dropping_the_initial_state(a, b, h0=None):
    return linear_recurrence_scan(a, b)


def scan_stopping_a_round_early(a, b, h0=None):
    if h0 is not None:
        b = torch.cat([(a[0] * h0 + b[0]).unsqueeze(0), b[1:]])
    shift = 1
    while 2 * shift < a.shape[0]:  # off by one round
        a_before = torch.cat([torch.ones_like(a[:shift]), a[:-shift]])
        b_before = torch.cat([torch.zeros_like(b[:shift]), b[:-shift]])
        a, b = combine((a_before, b_before), (a, b))
        shift *= 2
    return b


def log_space_without_the_initial_state(log_a, log_b, log_h0=None):
    return linear_recurrence_log(log_a, log_b)


@pytest.mark.parametrize("broken", [scan_with_operands_swapped, scan_dropping_the_initial_state,
                                    scan_stopping_a_round_early])
def test_planted_scan_bugs_are_caught(broken):
    a, b, h0 = recurrence_inputs(33)
    a = 0.9 + 0.1 * a  # slow decay, so that the first steps still matter at the end
    assert not torch.allclose(broken(a, b, h0), linear_recurrence_loop(a, b, h0), rtol=1e-6, atol=1e-6)


def test_planted_log_space_bug_is_caught():
    a, b, h0 = recurrence_inputs(17, positive=True)
    broken = log_space_without_the_initial_state(a.log(), b.log(), h0.log())
    assert not torch.allclose(broken, linear_recurrence_loop(a, b, h0), rtol=1e-6, atol=1e-6)


def test_mingru_follows_its_equations_and_scan_equals_loop():
    torch.manual_seed(0)
    layer = MinGRU(5, 4).double()
    x, h0 = torch.randn(9, 2, 5, dtype=torch.float64), torch.randn(1, 2, 4, dtype=torch.float64)
    outputs, state = layer(x, h0)
    z_pre, n = layer.linear(x).chunk(2, dim=-1)
    z, h, expected = torch.sigmoid(z_pre), h0[0], []
    for t in range(9):
        h = z[t] * h + (1 - z[t]) * n[t]
        expected.append(h)
    torch.testing.assert_close(outputs, torch.stack(expected), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state, outputs[-1:])
    looped = MinGRU(5, 4, recurrence=linear_recurrence_loop).double()
    looped.load_state_dict(layer.state_dict())
    torch.testing.assert_close(looped(x, h0)[0], outputs, rtol=1e-12, atol=1e-12)


def test_minlstm_normalises_its_gates():
    torch.manual_seed(0)
    layer = MinLSTM(5, 4).double()
    x = torch.randn(7, 2, 5, dtype=torch.float64)
    a, b = layer.coefficients(x)
    f_pre, i_pre, g = layer.linear(x).chunk(3, dim=-1)
    f, i = torch.sigmoid(f_pre), torch.sigmoid(i_pre)
    torch.testing.assert_close(a + b / g, torch.ones_like(a))  # f' + i' = 1
    torch.testing.assert_close(a, f / (f + i))
    torch.testing.assert_close(layer(x)[0], linear_recurrence_loop(a, b), rtol=1e-12, atol=1e-12)


def test_stacked_mingru_runs_its_layers_in_turn_and_fits_the_book_wrappers():
    torch.manual_seed(0)
    stacked = StackedMinGRU(3, 6, num_layers=2)
    x, state = torch.randn(10, 4, 3), torch.randn(2, 4, 6)
    outputs, final = stacked(x, state)
    first = stacked.layers[0](x, state[:1])[0]
    torch.testing.assert_close(outputs, stacked.layers[1](first, state[1:])[0])
    assert final.shape == (2, 4, 6)
    assert RecurrentReadout(stacked, output_size=1)(x).shape == (1, 4, 1)
    logits, lm_state = CharLM(StackedMinGRU(7, 6, num_layers=2), 7)(torch.randint(0, 7, (5, 3)))
    assert logits.shape == (5, 3, 7) and lm_state.shape == (2, 3, 6)
    with pytest.raises(ValueError, match="state of shape"):
        stacked(x, state[:1])
    with pytest.raises(ValueError, match="expected inputs"):
        stacked(torch.randn(10, 4, 5))


def test_gru_without_hidden_weights_is_a_linear_recurrence():
    torch.manual_seed(0)
    gru = nn.GRU(3, 4).double()
    with torch.no_grad():
        gru.weight_hh_l0.zero_()
        gru.bias_hh_l0.zero_()
    x = torch.randn(8, 2, 3, dtype=torch.float64)
    _, z_pre, n_pre = (x @ gru.weight_ih_l0.T + gru.bias_ih_l0).chunk(3, dim=-1)
    z = torch.sigmoid(z_pre)
    torch.testing.assert_close(linear_recurrence_scan(z, (1 - z) * torch.tanh(n_pre)), gru(x)[0],
                               rtol=1e-12, atol=1e-12)


def test_parity_task():
    inputs, targets = parity_task(64, 20, torch.Generator().manual_seed(0))
    assert inputs.shape == (20, 64, 2) and targets.shape == (20, 64)
    bits = inputs[..., 1]
    assert torch.equal(inputs.sum(dim=-1), torch.ones(20, 64))
    assert torch.equal(targets, bits.cumsum(dim=0) % 2)
    again = parity_task(64, 20, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)
    with pytest.raises(ValueError, match="positive"):
        parity_task(0, 5)


def test_minlstm_and_stacked_mingru_gradients_pass_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    minlstm = MinLSTM(3, 4).double()
    assert gradcheck(lambda inputs: minlstm(inputs)[0], (x,))
    stacked = StackedMinGRU(3, 4, num_layers=2).double()
    state = torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda inputs, h0: stacked(inputs, h0)[0], (x, state))
    weight = stacked.layers[0].linear.weight
    (stacked(x, state)[0].sum()).backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0  # the lower layer learns through the upper


def test_gru_hidden_candidate_bias_is_scaled_by_the_reset_gate():
    """With W_hh = 0 but b_hh != 0, b_hr and b_hz add to the input biases, b_hn does not:
    the candidate needs r_t * b_hn; simply adding b_hn (as if r_t were 1) is caught."""
    torch.manual_seed(0)
    gru = nn.GRU(3, 4).double()
    with torch.no_grad():
        gru.weight_hh_l0.zero_()
        gru.bias_hh_l0.normal_()
    x = torch.randn(8, 2, 3, dtype=torch.float64)
    r_pre, z_pre, n_pre = (x @ gru.weight_ih_l0.T + gru.bias_ih_l0).chunk(3, dim=-1)
    b_hr, b_hz, b_hn = gru.bias_hh_l0.detach().chunk(3)
    r, z = torch.sigmoid(r_pre + b_hr), torch.sigmoid(z_pre + b_hz)
    expected = gru(x)[0]
    torch.testing.assert_close(linear_recurrence_scan(z, (1 - z) * torch.tanh(n_pre + r * b_hn)), expected,
                               rtol=1e-12, atol=1e-12)
    folded = linear_recurrence_scan(z, (1 - z) * torch.tanh(n_pre + b_hn))  # the planted error
    assert (folded - expected).abs().max() > 1e-3
