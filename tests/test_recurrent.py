"""One harness for the three scratch recurrent layers: chapter 2's skeleton with the RNN's,
the LSTM's (chapter 6) and the GRU's (chapter 9) step, and chapter 5's stacking wrapper
around each (chapters 5, 7 and 10).

For random sizes, every single layer and every stack equals its PyTorch module in outputs,
final states and the gradients of every parameter and of the initial state; bad input gets
the same clear errors from all three; and a bug planted in any one step function makes the
harness fail, so the harness can fail.
"""

import warnings
from typing import Callable, NamedTuple

import pytest
import torch
from torch import nn

from rnnbook import gru, lstm, rnn
from rnnbook.recurrent import RecurrentScratch, StackedScratch

# The oneDNN CPU kernel has no projection; PyTorch says so once and uses its own loop.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")


class Cell(NamedTuple):
    name: str
    layer: type  # the single-layer scratch class
    stacked: type  # the scratch stack
    module: type  # the PyTorch module both must equal
    torch_cell: type  # PyTorch's one-step module
    step: Callable  # the step function, step(x, state, W_ih, W_hh, b_ih, b_hh)
    gates: int  # weight blocks per layer
    pair: bool  # whether the state is (h, c)
    option: str | None  # the one setting only this kind of module has


CELLS = [
    Cell("rnn", rnn.RNNScratch, rnn.StackedRNNScratch, nn.RNN, nn.RNNCell, rnn.rnn_step, 1, False, "nonlinearity"),
    Cell("lstm", lstm.LSTMScratch, lstm.StackedLSTMScratch, nn.LSTM, nn.LSTMCell, lstm.lstm_step, 4, True,
         "proj_size"),
    Cell("gru", gru.GRUScratch, gru.StackedGRUScratch, nn.GRU, nn.GRUCell, gru.gru_step, 3, False, None),
]
CELL_IDS = [cell.name for cell in CELLS]


def random_configuration(seed: int) -> dict:
    """Random sizes; the fixed list below makes sure the degenerate cases are always in."""
    g = torch.Generator().manual_seed(seed)

    def pick(low, high):
        return int(torch.randint(low, high + 1, (1,), generator=g))

    H = pick(2, 9)
    return dict(I=pick(1, 9), H=H, L=pick(1, 3), bidirectional=bool(pick(0, 1)), T=pick(1, 7), B=pick(1, 4),
                nonlinearity=("tanh", "relu")[pick(0, 1)], proj_size=pick(0, 1) * pick(1, H - 1))


FIXED = [  # batch 1, length 1, input size != hidden size, relu, projection, and combinations
    dict(I=3, H=5, L=1, bidirectional=False, T=1, B=1, nonlinearity="tanh", proj_size=0),
    dict(I=6, H=2, L=2, bidirectional=True, T=1, B=3, nonlinearity="relu", proj_size=1),
    dict(I=1, H=4, L=3, bidirectional=True, T=5, B=1, nonlinearity="tanh", proj_size=0),
    dict(I=4, H=6, L=1, bidirectional=False, T=6, B=2, nonlinearity="relu", proj_size=2),
    dict(I=7, H=5, L=3, bidirectional=True, T=4, B=1, nonlinearity="tanh", proj_size=4),
]
CONFIGURATIONS = FIXED + [random_configuration(seed) for seed in range(10)]
CONFIGURATION_IDS = ["I{I}-H{H}-L{L}-bi{bidirectional:d}-T{T}-B{B}-{nonlinearity}-P{proj_size}".format(**c)
                     for c in CONFIGURATIONS]


def options(cell: Cell, c: dict) -> dict:
    """The cell's own setting from configuration ``c``, as a keyword for both models."""
    return {cell.option: c[cell.option]} if cell.option else {}


def stack_pair(cell: Cell, c: dict, dropout: float = 0.0, seed: int = 0):
    """A PyTorch module and the scratch stack holding a copy of its weights."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns about dropout with one layer
        reference = cell.module(c["I"], c["H"], num_layers=c["L"], bidirectional=c["bidirectional"],
                                dropout=dropout, **options(cell, c))
    scratch = cell.stacked(c["I"], c["H"], num_layers=c["L"], bidirectional=c["bidirectional"], dropout=dropout,
                           **options(cell, c))
    return reference, scratch.copy_weights_from(reference)


def random_states(cell: Cell, leading: tuple, c: dict) -> tuple:
    """A random state: one tensor ``(*leading, H)``, or ``(h, c)`` with ``h`` of the projected size."""
    h = torch.randn(*leading, (c.get("proj_size") or c["H"]) if cell.pair else c["H"])
    return (h, torch.randn(*leading, c["H"])) if cell.pair else (h,)


def as_state(parts: tuple):
    return parts if len(parts) > 1 else parts[0]


def flat(state) -> tuple:
    return state if isinstance(state, tuple) else (state,)


def check_stack_equals_module(cell: Cell, c: dict) -> None:
    """Outputs, final states and every gradient, from zeros and from a random state."""
    reference, scratch = stack_pair(cell, c)
    D = 2 if c["bidirectional"] else 1
    x = torch.randn(c["T"], c["B"], c["I"])
    for initial in (None, random_states(cell, (c["L"] * D, c["B"]), c)):
        leaves = None if initial is None else [part.clone().requires_grad_() for part in initial]
        ours_leaves = None if initial is None else [part.clone().requires_grad_() for part in initial]
        expected_output, expected_state = reference(x, None if leaves is None else as_state(tuple(leaves)))
        output, state = scratch(x, None if ours_leaves is None else as_state(tuple(ours_leaves)))
        torch.testing.assert_close(output, expected_output)
        torch.testing.assert_close(flat(state), flat(expected_state))
        G = torch.randn_like(output)
        reference.zero_grad()
        scratch.zero_grad()
        ((expected_output * G).sum() + flat(expected_state)[-1].sum()).backward()
        ((output * G).sum() + flat(state)[-1].sum()).backward()
        theirs = dict(reference.named_parameters())
        for index, layer in enumerate(scratch.layers):
            suffix = f"_l{index // D}" + ("_reverse" if index % D else "")
            for name, parameter in layer.named_parameters():
                torch.testing.assert_close(parameter.grad, theirs[StackedScratch.pytorch_names[name] + suffix].grad)
        if initial is not None:
            for mine, their in zip(ours_leaves, leaves):
                torch.testing.assert_close(mine.grad, their.grad)


@pytest.mark.parametrize("c", CONFIGURATIONS, ids=CONFIGURATION_IDS)
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_stack_equals_the_pytorch_module(cell, c):
    check_stack_equals_module(cell, c)


def check_layer_equals_module(cell: Cell, I: int, H: int, T: int, B: int, seed: int = 0) -> None:
    """One scratch layer against a one-layer PyTorch module, weights copied by position."""
    torch.manual_seed(seed)
    reference, layer = cell.module(I, H), cell.layer(I, H)
    with torch.no_grad():
        for ours, theirs in zip(layer.parameters(), reference.parameters(), strict=True):
            ours.copy_(theirs)
    x = torch.randn(T, B, I)
    initial = random_states(cell, (B,), dict(H=H))
    outputs, state = layer(x, as_state(initial))
    expected, expected_state = reference(x, as_state(tuple(part[None] for part in initial)))
    torch.testing.assert_close(outputs, expected)
    torch.testing.assert_close(flat(state), tuple(part[0] for part in flat(expected_state)))
    outputs.square().sum().backward()
    expected.square().sum().backward()
    for ours, theirs in zip(layer.parameters(), reference.parameters()):
        torch.testing.assert_close(ours.grad, theirs.grad)


@pytest.mark.parametrize("c", CONFIGURATIONS, ids=CONFIGURATION_IDS)
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_single_layer_equals_the_pytorch_module(cell, c):
    check_layer_equals_module(cell, c["I"], c["H"], c["T"], c["B"])


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_step_equals_pytorchs_one_step_module(cell):
    torch.manual_seed(1)
    one_step = cell.torch_cell(5, 3)
    x, state = torch.randn(4, 5), random_states(cell, (4,), dict(H=3))
    torch.testing.assert_close(flat(cell.step(x, as_state(state), *one_step.parameters())),
                               flat(one_step(x, as_state(state))))


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_layer_is_its_step_over_time_and_carries_the_state(cell):
    torch.manual_seed(2)
    layer = cell.layer(3, 4)
    x = torch.randn(6, 2, 3)
    outputs, last = layer(x)
    state = as_state(tuple(torch.zeros(2, 4) for _ in range(2 if cell.pair else 1)))
    for t in range(6):
        state = cell.step(x[t], state, layer.W_ih, layer.W_hh, layer.b_ih, layer.b_hh)
        torch.testing.assert_close(outputs[t], flat(state)[0])
    torch.testing.assert_close(flat(last), flat(state))
    first, carried = layer(x[:2])
    second, _ = layer(x[2:], carried)
    torch.testing.assert_close(torch.cat([first, second]), outputs)
    permutation = torch.tensor([1, 0])  # examples do not mix
    torch.testing.assert_close(layer(x[:, permutation])[0], outputs[:, permutation])


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_parameters_are_laid_out_and_initialised_like_pytorchs(cell):
    layer = cell.layer(10, 100)
    G = cell.gates
    assert [(name, tuple(p.shape)) for name, p in layer.named_parameters()] == [
        ("W_ih", (G * 100, 10)), ("W_hh", (G * 100, 100)), ("b_ih", (G * 100,)), ("b_hh", (G * 100,))]
    for parameter in layer.parameters():
        assert 0.9 * 100 ** -0.5 < parameter.abs().max() <= 100 ** -0.5
    stack = cell.stacked(3, 5, num_layers=2, bidirectional=True)
    assert all(type(part) is cell.layer for part in stack.layers)
    assert [part.input_size for part in stack.layers] == [3, 3, 10, 10]  # layer 1 reads both directions
    assert stack.hidden_size == 5 and stack.output_size == 5


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_layers_differ_only_in_their_step_and_stacks_only_in_their_settings(cell):
    """The loop over time and the stacking loop exist once, in rnnbook.recurrent."""
    assert issubclass(cell.layer, RecurrentScratch) and issubclass(cell.stacked, StackedScratch)
    assert "step" in vars(cell.layer)
    assert not {"forward", "__call__"} & set(vars(cell.layer))
    assert not {"forward", "__call__", "copy_weights_from"} & set(vars(cell.stacked))
    assert cell.stacked.pytorch_class is cell.module


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_copies_are_copies_and_batch_first_needs_only_a_transpose(cell):
    torch.manual_seed(4)
    c = dict(I=3, H=5, proj_size=2, nonlinearity="relu")
    batch_first = cell.module(3, 5, num_layers=2, bidirectional=True, batch_first=True, **options(cell, c))
    scratch = cell.stacked(3, 5, num_layers=2, bidirectional=True, **options(cell, c)).copy_weights_from(batch_first)
    x = torch.randn(4, 6, 3)  # (B, T, I)
    with torch.no_grad():
        output, state = batch_first(x)
        ours, our_state = scratch(x.transpose(0, 1))
        torch.testing.assert_close(ours.transpose(0, 1), output)
        torch.testing.assert_close(flat(our_state), flat(state))  # states ignore batch_first
        batch_first.weight_hh_l1_reverse.add_(1.0)
    assert not torch.equal(scratch.layers[3].W_hh, batch_first.weight_hh_l1_reverse)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_training_mode_dropout_matches_pytorch_on_the_cpu_with_the_same_seed(cell):
    c = dict(I=4, H=6, L=3, bidirectional=True, T=5, B=3, nonlinearity="tanh", proj_size=0)
    reference, scratch = stack_pair(cell, c, dropout=0.4, seed=5)
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
    torch.testing.assert_close(ours[0], expected[0])
    torch.testing.assert_close(flat(ours[1]), flat(expected[1]))
    assert not torch.allclose(other_masks[0], ours[0])  # dropout really acts in training mode
    torch.testing.assert_close(evaluation[0][0], evaluation[1][0])
    torch.testing.assert_close(flat(ours[1])[0][:2], flat(evaluation[0][1])[0][:2])  # layer 0 sees no dropout


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_bad_inputs_give_clear_errors(cell):
    layer = cell.layer(3, 4)
    x = torch.randn(5, 2, 3)
    for bad in (torch.randn(5, 2, 4), torch.randn(0, 2, 3), torch.randn(2, 3), x.tolist()):
        with pytest.raises(ValueError, match=r"expected inputs of shape \(T, B, 3\) with T >= 1"):
            layer(bad)
    with pytest.raises(ValueError, match="sizes must be positive"):
        cell.layer(0, 4)
    layout = (r"a state tuple \(h, c\) with h of shape \(B, H\) = \(2, 4\) and c of shape \(B, H\) = \(2, 4\)"
              if cell.pair else r"a state of shape \(B, H\) = \(2, 4\)")
    batched = as_state(tuple(torch.zeros(1, 2, 4) for _ in range(2 if cell.pair else 1)))  # nn.X's layout
    with pytest.raises(ValueError, match=layout + r" for inputs \(T, B, I\) = \(5, 2, 3\), got a "):
        layer(x, batched)
    other_kind = torch.zeros(2, 4) if cell.pair else (torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="got a tensor of shape" if cell.pair else r"got a tuple of \[\(2, 4\)"):
        layer(x, other_kind)  # a GRU or RNN state for an LSTM, or the other way round

    stack = cell.stacked(3, 4, num_layers=2, bidirectional=True)
    name = r"h_0 of shape \(num_layers \* num_directions, B, H\) = \(4, 2, 4\)"
    with pytest.raises(ValueError, match=name):
        stack(x, as_state(tuple(torch.zeros(2, 4, 4) for _ in range(2 if cell.pair else 1))))  # batch-first
    with pytest.raises(ValueError, match=r"expected inputs of shape \(T, B, 3\)"):
        stack(torch.randn(5, 2, 4))
    with pytest.raises(ValueError, match="num_layers must be >= 1"):
        cell.stacked(3, 4, num_layers=0)
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\]"):
        cell.stacked(3, 4, num_layers=2, dropout=1.5)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_weights_are_copied_only_from_a_module_configured_alike(cell):
    c = dict(proj_size=2, nonlinearity="relu")
    stack = cell.stacked(3, 4, num_layers=2, bidirectional=True, **options(cell, c))
    settings = dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True, **options(cell, c))
    assert stack.copy_weights_from(cell.module(**settings)) is stack
    changes = [dict(input_size=2), dict(hidden_size=5), dict(num_layers=1), dict(bidirectional=False),
               dict(dropout=0.1), dict(bias=False)]
    changes += [{cell.option: 0 if cell.option == "proj_size" else "tanh"}] if cell.option else []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns about dropout with one layer
        for change in changes:
            with pytest.raises(ValueError, match="configurations differ"):
                stack.copy_weights_from(cell.module(**(settings | change)))
    wrong_kind = nn.GRU if cell.module is not nn.GRU else nn.LSTM
    with pytest.raises(ValueError, match=f"expects an nn.{cell.module.__name__}"):
        stack.copy_weights_from(wrong_kind(3, 4, num_layers=2, bidirectional=True))


# Bugs a reader could plant in a step function; each must make the harness fail.
def rnn_squashed_by_sigmoid(x, h, W_ih, W_hh, b_ih, b_hh, activation=torch.tanh):
    return torch.sigmoid(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh)


def lstm_forget_gate_squashed_by_tanh(x, state, W_ih, W_hh, b_ih, b_hh):
    h, c = state
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=-1)
    c = torch.tanh(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def lstm_gates_in_the_wrong_order(x, state, W_ih, W_hh, b_ih, b_hh):
    h, c = state
    f, i, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_update_convention_flipped(x, h, W_ih, W_hh, b_ih, b_hh):
    input_r, input_z, input_n = (x @ W_ih.T + b_ih).chunk(3, dim=-1)
    hidden_r, hidden_z, hidden_n = (h @ W_hh.T + b_hh).chunk(3, dim=-1)
    r, z = torch.sigmoid(input_r + hidden_r), torch.sigmoid(input_z + hidden_z)
    n = torch.tanh(input_n + r * hidden_n)
    return z * n + (1 - z) * h


PLANTED = [("rnn", "rnn_step", rnn_squashed_by_sigmoid),
           ("lstm", "lstm_step", lstm_forget_gate_squashed_by_tanh),
           ("lstm", "lstm_step", lstm_gates_in_the_wrong_order),
           ("gru", "gru_step", gru_update_convention_flipped),
           ("gru", "gru_step", gru.gru_step_paper)]


@pytest.mark.parametrize("cell_name, function, bug", PLANTED, ids=[bug.__name__ for _, _, bug in PLANTED])
def test_a_bug_planted_in_a_step_function_fails_the_harness(cell_name, function, bug, monkeypatch):
    cell = next(cell for cell in CELLS if cell.name == cell_name)
    check_layer_equals_module(cell, 3, 4, 5, 2)  # the harness passes on the real step...
    module = {"rnn": rnn, "lstm": lstm, "gru": gru}[cell_name]
    monkeypatch.setattr(module, function, bug)  # ...the layers look their step function up at call time...
    if cell_name == "gru":
        monkeypatch.setattr(cell.layer.__init__, "__defaults__", (bug,))  # GRUScratch binds it as a default
    for check in (lambda: check_layer_equals_module(cell, 3, 4, 5, 2),
                  lambda: check_stack_equals_module(cell, FIXED[2])):
        with pytest.raises(AssertionError):  # ...and fails on the planted bug, layer and stack alike
            check()
