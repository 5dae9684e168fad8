"""rnnbook.gru (chapter 9): what only the GRU has, the paper's step and the candidate bias
inside the reset gate. The layer's equivalence with nn.GRU is in test_recurrent.py and the
hand-written backward pass in test_bptt.py, with the other cells'."""

import pytest
import torch

from rnnbook.bptt import gru_backward, gru_forward, gru_step_backward, gru_step_forward, relative_error
from rnnbook.gru import GRUScratch, gru_step, gru_step_paper


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


def random_weights(I, H, seed=0, dtype=torch.float64, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(*shape, generator=g, dtype=dtype) for shape in [(3 * H, I), (3 * H, H), (3 * H,), (3 * H,)]]


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
    assert pytorch_style.step_function is gru_step and paper_style.step_function is gru_step_paper
    with torch.no_grad():
        torch.testing.assert_close(paper_style(x)[1], h)
        assert (paper_style(x)[0] - pytorch_style(x)[0]).abs().max() > 1e-3


def test_candidate_biases_get_different_gradients():
    """Only the sum of the r and z biases matters; b_hn sits inside the reset gate, so its
    gradient differs from b_in's (autograd agrees with the hand-written pass in test_bptt.py)."""
    torch.manual_seed(6)
    I, H, B = 3, 4, 5
    x, h = torch.randn(B, I, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    _, cache = gru_step_forward(x, h, *random_weights(I, H, seed=6))
    db_ih, db_hh = gru_step_backward(torch.randn(B, H, dtype=torch.float64), cache)[4:]
    torch.testing.assert_close(db_ih[:2 * H], db_hh[:2 * H])  # gates: only the sum of the biases matters
    assert relative_error(db_ih[2 * H:], db_hh[2 * H:]) > 1e-3  # candidate: b_hn sits inside the reset gate


def test_bad_inputs_to_the_backward_pass_give_clear_errors():
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
