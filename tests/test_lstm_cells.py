"""A loop over nn.LSTMCell equals nn.LSTM: cells_from_lstm and run_cells (chapter 8)."""

import pytest
import torch
from torch import nn

from rnnbook.lstm_cells import cells_from_lstm, run_cells

# (input_size, hidden_size, num_layers, T, B): degenerate sizes included on purpose
CONFIGURATIONS = [
    (5, 4, 1, 6, 3),
    (3, 7, 2, 5, 2),
    (4, 4, 3, 4, 3),
    (2, 3, 2, 1, 1),   # one step, batch 1
    (6, 2, 1, 9, 1),   # batch 1
    (1, 5, 2, 1, 4),   # one step, input size 1
]


def random_state(num_layers, batch, hidden, generator):
    return (torch.randn(num_layers, batch, hidden, generator=generator),
            torch.randn(num_layers, batch, hidden, generator=generator))


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "given_state"])
@pytest.mark.parametrize("input_size, hidden_size, num_layers, T, B", CONFIGURATIONS)
def test_cell_loop_equals_nn_lstm_forward_and_backward(input_size, hidden_size, num_layers, T, B, with_state):
    generator = torch.Generator().manual_seed(input_size * 100 + hidden_size * 10 + num_layers)
    torch.manual_seed(T * 10 + B)
    lstm = nn.LSTM(input_size, hidden_size, num_layers=num_layers)
    cells = cells_from_lstm(lstm)
    assert isinstance(cells, nn.ModuleList) and len(cells) == num_layers
    assert all(type(cell) is nn.LSTMCell for cell in cells)

    x = torch.randn(T, B, input_size, generator=generator)
    state = random_state(num_layers, B, hidden_size, generator) if with_state else None
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    expected_output, (expected_h, expected_c) = lstm(x_ref, state)
    output, (h_n, c_n) = run_cells(cells, x_ours, state)

    assert output.shape == (T, B, hidden_size)
    assert h_n.shape == c_n.shape == (num_layers, B, hidden_size)
    torch.testing.assert_close(output, expected_output)
    torch.testing.assert_close(h_n, expected_h)
    torch.testing.assert_close(c_n, expected_c)

    weights = torch.randn(T, B, hidden_size, generator=generator)
    ((expected_output * weights).sum() + expected_c.sum()).backward()
    ((output * weights).sum() + c_n.sum()).backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad)
    for layer, cell in enumerate(cells):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            torch.testing.assert_close(getattr(cell, name).grad, getattr(lstm, f"{name}_l{layer}").grad)


def test_without_bias_and_in_double_precision():
    lstm = nn.LSTM(3, 4, num_layers=2, bias=False).double()
    cells = cells_from_lstm(lstm)
    assert all(cell.bias_ih is None and cell.weight_ih.dtype == torch.float64 for cell in cells)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    expected = lstm(x)
    ours = run_cells(cells, x)
    torch.testing.assert_close(ours[0], expected[0])
    torch.testing.assert_close(ours[1][1], expected[1][1])


def test_cells_are_copies_not_views():
    lstm = nn.LSTM(3, 4)
    cells = cells_from_lstm(lstm)
    with torch.no_grad():
        lstm.weight_hh_l0.add_(1.0)
    x = torch.randn(4, 2, 3)
    assert not torch.allclose(run_cells(cells, x)[0], lstm(x)[0])


def test_a_state_can_be_carried_across_calls():
    lstm = nn.LSTM(3, 4, num_layers=2)
    cells = cells_from_lstm(lstm)
    x = torch.randn(7, 2, 3)
    first, state = run_cells(cells, x[:3])
    second, final = run_cells(cells, x[3:], state)
    expected_output, (expected_h, expected_c) = lstm(x)
    torch.testing.assert_close(torch.cat([first, second]), expected_output)
    torch.testing.assert_close(final[0], expected_h)
    torch.testing.assert_close(final[1], expected_c)


@pytest.mark.parametrize("options, message", [
    (dict(bidirectional=True), "bidirectional"),
    (dict(proj_size=2), "proj_size"),
])
def test_what_lstm_cell_cannot_express_is_refused(options, message):
    with pytest.raises(ValueError, match=message):
        cells_from_lstm(nn.LSTM(3, 4, **options))


def test_only_nn_lstm_is_accepted():
    with pytest.raises(TypeError, match="nn.LSTM"):
        cells_from_lstm(nn.GRU(3, 4))


@pytest.mark.parametrize("shape", [(4, 3), (4, 2, 5), (0, 2, 3), (4, 2, 3, 1)])
def test_bad_input_shapes_are_refused(shape):
    cells = cells_from_lstm(nn.LSTM(3, 4, num_layers=2))
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        run_cells(cells, torch.randn(*shape))


@pytest.mark.parametrize("state", [
    (torch.zeros(2, 4), torch.zeros(2, 4)),            # per-cell shape, missing the layer dimension
    (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)),      # one layer instead of two
    (torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)),      # wrong batch
    (torch.zeros(2, 2, 4),),                           # c missing
    torch.zeros(2, 2, 4),                              # a tensor, not a tuple (nn.GRU's convention)
])
def test_bad_states_are_refused(state):
    cells = cells_from_lstm(nn.LSTM(3, 4, num_layers=2))
    with pytest.raises(ValueError, match=r"\(2, 2, 4\)"):
        run_cells(cells, torch.randn(5, 2, 3), state)


def test_cells_that_do_not_chain_are_refused():
    with pytest.raises(ValueError, match="input_size"):
        run_cells([nn.LSTMCell(3, 4), nn.LSTMCell(5, 4)], torch.randn(2, 1, 3))
    with pytest.raises(ValueError, match="hidden_size"):
        run_cells([nn.LSTMCell(3, 4), nn.LSTMCell(4, 6)], torch.randn(2, 1, 3))
    with pytest.raises(ValueError, match="at least one cell"):
        run_cells([], torch.randn(2, 1, 3))
