"""rnnbook.gru (chapter 9): the scratch GRU equals nn.GRU, the paper's step is a different
function, and the hand-written backward pass equals autograd."""

import pytest
import torch
from torch import nn

from rnnbook.bptt import numerical_gradient, relative_error
from rnnbook.gru import (GRUScratch, gru_backward, gru_forward, gru_step, gru_step_backward, gru_step_forward,
                         gru_step_paper)


def random_configuration(seed):
    g = torch.Generator().manual_seed(seed)

    def pick(low, high):
        return int(torch.randint(low, high + 1, (1,), generator=g))

    return dict(I=pick(1, 9), H=pick(1, 9), T=pick(1, 7), B=pick(1, 4))


FIXED = [  # batch 1, length 1, input size != hidden size, and combinations
    dict(I=3, H=5, T=1, B=1),
    dict(I=7, H=2, T=4, B=1),
    dict(I=1, H=6, T=1, B=3),
    dict(I=4, H=4, T=6, B=2),
]
CONFIGURATIONS = FIXED + [random_configuration(seed) for seed in range(10)]
IDS = ["I{I}-H{H}-T{T}-B{B}".format(**c) for c in CONFIGURATIONS]


def scratch_copy_of(reference: nn.GRU) -> GRUScratch:
    scratch = GRUScratch(reference.input_size, reference.hidden_size).to(reference.weight_ih_l0.dtype)
    with torch.no_grad():
        for ours, theirs in zip(scratch.parameters(), reference.parameters()):
            ours.copy_(theirs)
    return scratch


def random_weights(I, H, seed=0, dtype=torch.float64, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(*shape, generator=g, dtype=dtype) for shape in [(3 * H, I), (3 * H, H), (3 * H,), (3 * H,)]]


@pytest.mark.parametrize("c", CONFIGURATIONS, ids=IDS)
def test_scratch_equals_nn_gru_outputs_states_and_gradients(c):
    torch.manual_seed(0)
    reference = nn.GRU(c["I"], c["H"])
    scratch = scratch_copy_of(reference)
    x, h0 = torch.randn(c["T"], c["B"], c["I"]), torch.randn(c["B"], c["H"])
    for initial in (None, h0):
        outputs, state = scratch(x, initial)
        expected, expected_state = reference(x, None if initial is None else initial[None])
        torch.testing.assert_close(outputs, expected)
        torch.testing.assert_close(state, expected_state[0])
    scratch(x, h0)[0].square().sum().backward()
    reference(x, h0[None])[0].square().sum().backward()
    for ours, theirs in zip(scratch.parameters(), reference.parameters()):
        torch.testing.assert_close(ours.grad, theirs.grad)


def test_gru_step_equals_nn_gru_cell():
    torch.manual_seed(1)
    cell = nn.GRUCell(5, 3)
    x, h = torch.randn(4, 5), torch.randn(4, 3)
    torch.testing.assert_close(gru_step(x, h, *cell.parameters()), cell(x, h))


def test_state_carries_over_and_outputs_end_in_the_state():
    torch.manual_seed(2)
    layer = GRUScratch(3, 4)
    x = torch.randn(6, 2, 3)
    outputs, last = layer(x)
    assert torch.equal(outputs[-1], last)
    first, state = layer(x[:2])
    second, _ = layer(x[2:], state)
    torch.testing.assert_close(torch.cat([first, second]), outputs)


def test_initialisation_matches_pytorch_bounds_and_shapes():
    layer = GRUScratch(10, 100)
    assert [tuple(p.shape) for p in layer.parameters()] == [(300, 10), (300, 100), (300,), (300,)]
    bound = 100 ** -0.5
    for parameter in layer.parameters():
        assert parameter.abs().max() <= bound and parameter.abs().max() > 0.9 * bound
    assert layer.hidden_size == 100 and layer.step is gru_step


def paper_reference(x, h, W_ih, W_hh, b_ih, b_hh):
    """Cho et al.'s GRU written gate by gate, independently of rnnbook.gru."""
    H = h.shape[1]
    W_ir, W_iz, W_in = W_ih.chunk(3)
    W_hr, W_hz, W_hn = W_hh.chunk(3)
    b_ir, b_iz, b_in = b_ih.chunk(3)
    b_hr, b_hz, b_hn = b_hh.chunk(3)
    assert W_hn.shape == (H, H)
    r = torch.sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = torch.sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n = torch.tanh(x @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
    return (1 - z) * n + z * h


@pytest.mark.parametrize("c", CONFIGURATIONS, ids=IDS)
def test_paper_step_is_the_paper_formula_and_differs_from_pytorchs(c):
    I, H, B = c["I"], c["H"], c["B"]
    weights = random_weights(I, H, seed=I * 100 + H)
    g = torch.Generator().manual_seed(B)
    x, h = torch.randn(B, I, generator=g, dtype=torch.float64), torch.randn(B, H, generator=g, dtype=torch.float64)
    paper = gru_step_paper(x, h, *weights)
    torch.testing.assert_close(paper, paper_reference(x, h, *weights))
    assert (paper - gru_step(x, h, *weights)).abs().max() > 1e-3


def test_paper_step_agrees_with_pytorchs_when_the_reset_gate_is_open():
    I, H = 4, 6
    W_ih, W_hh, b_ih, b_hh = random_weights(I, H)
    b_ih = b_ih.clone()
    b_ih[:H] = 50.0  # r = sigmoid(50 + ...) = 1 in float64
    x, h = torch.randn(3, I, dtype=torch.float64), torch.randn(3, H, dtype=torch.float64)
    torch.testing.assert_close(gru_step_paper(x, h, W_ih, W_hh, b_ih, b_hh), gru_step(x, h, W_ih, W_hh, b_ih, b_hh))


def test_paper_step_agrees_with_pytorchs_for_a_diagonal_candidate_matrix_without_hidden_bias():
    I, H = 3, 5
    W_ih, W_hh, b_ih, b_hh = (w.clone() for w in random_weights(I, H, seed=7))
    W_hh[2 * H:] = torch.diag(torch.diagonal(W_hh[2 * H:]))
    b_hh[2 * H:] = 0.0
    x, h = torch.randn(2, I, dtype=torch.float64), torch.randn(2, H, dtype=torch.float64)
    torch.testing.assert_close(gru_step_paper(x, h, W_ih, W_hh, b_ih, b_hh), gru_step(x, h, W_ih, W_hh, b_ih, b_hh))


def test_layer_uses_the_step_it_was_given():
    torch.manual_seed(3)
    pytorch_style = GRUScratch(4, 5)
    paper_style = GRUScratch(4, 5, step=gru_step_paper)
    paper_style.load_state_dict(pytorch_style.state_dict())
    x = torch.randn(5, 2, 4)
    h = torch.zeros(2, 5)
    for x_t in x:
        h = gru_step_paper(x_t, h, *paper_style.parameters())
    with torch.no_grad():
        torch.testing.assert_close(paper_style(x)[1], h)
        assert (paper_style(x)[0] - pytorch_style(x)[0]).abs().max() > 1e-3


@pytest.mark.parametrize("c", CONFIGURATIONS, ids=IDS)
def test_manual_backward_equals_autograd_through_nn_gru(c):
    torch.manual_seed(4)
    reference = nn.GRU(c["I"], c["H"], dtype=torch.float64)
    xs = torch.randn(c["T"], c["B"], c["I"], dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(c["B"], c["H"], dtype=torch.float64, requires_grad=True)
    G = torch.randn(c["T"], c["B"], c["H"], dtype=torch.float64)
    (reference(xs, h0[None])[0] * G).sum().backward()
    hs, caches = gru_forward(xs.detach(), h0.detach(), *(p.detach() for p in reference.parameters()))
    torch.testing.assert_close(hs, reference(xs, h0[None])[0].detach())
    ours = gru_backward(G, caches)
    expected = [xs.grad, h0.grad, *(p.grad for p in reference.parameters())]
    for name, mine, theirs in zip(["xs", "h0", "W_ih", "W_hh", "b_ih", "b_hh"], ours, expected):
        assert relative_error(mine, theirs) < 1e-12, name


def test_manual_backward_equals_central_differences():
    torch.manual_seed(5)
    T, B, I, H = 4, 2, 3, 4
    tensors = {"xs": torch.randn(T, B, I, dtype=torch.float64), "h0": torch.randn(B, H, dtype=torch.float64)}
    tensors.update(zip(["W_ih", "W_hh", "b_ih", "b_hh"], random_weights(I, H, seed=5)))
    G = torch.randn(T, B, H, dtype=torch.float64)

    def loss():
        return (gru_forward(*tensors.values())[0] * G).sum()

    _, caches = gru_forward(*tensors.values())
    for (name, tensor), mine in zip(tensors.items(), gru_backward(G, caches)):
        assert relative_error(mine, numerical_gradient(loss, tensor)) < 1e-7, name


def test_step_backward_equals_autograd_of_gru_step_and_candidate_biases_differ():
    torch.manual_seed(6)
    I, H, B = 3, 4, 5
    args = [torch.randn(B, I, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64), *random_weights(I, H, seed=6)]
    args = [a.requires_grad_() for a in args]
    dh = torch.randn(B, H, dtype=torch.float64)
    expected = torch.autograd.grad((gru_step(*args) * dh).sum(), args)
    h, cache = gru_step_forward(*(a.detach() for a in args))
    torch.testing.assert_close(h, gru_step(*args).detach())
    ours = gru_step_backward(dh, cache)
    for mine, theirs in zip(ours, expected):
        assert relative_error(mine, theirs) < 1e-12
    db_ih, db_hh = ours[4], ours[5]
    torch.testing.assert_close(db_ih[:2 * H], db_hh[:2 * H])  # gates: only the sum of the biases matters
    assert relative_error(db_ih[2 * H:], db_hh[2 * H:]) > 1e-3  # candidate: b_hn sits inside the reset gate


def test_bad_inputs_give_clear_errors():
    layer = GRUScratch(3, 4)
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        layer(torch.randn(5, 2, 4))
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        layer(torch.randn(0, 2, 3))
    with pytest.raises(ValueError, match=r"state of shape \(B, H\) = \(2, 4\)"):
        layer(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))  # nn.GRU's (num_layers, B, H) layout
    with pytest.raises(ValueError, match="sizes must be positive"):
        GRUScratch(0, 4)
    W_ih, W_hh, b_ih, b_hh = random_weights(3, 4)
    x, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"W_hh should have shape \(12, 4\)"):
        gru_step_forward(x, h, W_ih, W_hh.T, b_ih, b_hh)
    with pytest.raises(ValueError, match=r"x should have shape \(B, I\)"):
        gru_step_forward(x[0], h, W_ih, W_hh, b_ih, b_hh)
    _, cache = gru_step_forward(x, h, W_ih, W_hh, b_ih, b_hh)
    with pytest.raises(ValueError, match=r"dh should have shape \(2, 4\)"):
        gru_step_backward(torch.zeros(4, 2, dtype=torch.float64), cache)
    with pytest.raises(ValueError, match="at least one step"):
        gru_backward(torch.zeros(0, 2, 4), [])
    with pytest.raises(ValueError, match=r"dhs should have shape"):
        gru_backward(torch.zeros(2, 2, 4, dtype=torch.float64), [cache])
    with pytest.raises(ValueError, match=r"xs should have shape \(T, B, I\)"):
        gru_forward(torch.zeros(0, 2, 3), h, W_ih, W_hh, b_ih, b_hh)
