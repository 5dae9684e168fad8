# %% [markdown]
# # Lab 2 · The RNN step and its loop
#
# Companion to chapter 2, *An RNN from scratch*. You write the two pieces the chapter
# builds the recurrent layer from: one step of the recurrence, and the loop that unrolls
# it over a sequence. The grader compares your code with PyTorch's `nn.RNN`, whose
# weights it copies into yours, so "right" means "the same numbers as PyTorch".
#
# Shapes follow the book: inputs are time-major, `(T, B, I)`; a batch of states is
# `(B, H)`; a row is one example, so $W x$ for a column vector is `x @ W.T` here.

# %% [given]
import torch
from torch import nn

torch.manual_seed(0)

# %% [markdown]
# ## Question 1: one step (4 points)
#
# The state after step $t$ is
#
# $$h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}),$$
#
# with `W_ih` of shape `(H, I)`, `W_hh` `(H, H)` and the biases `(H,)`, named and laid
# out as in `nn.RNN` (which keeps two biases where one would do; keep both).

# %% [answer] rnn_step
def rnn_step(x, h, W_ih, W_hh, b_ih, b_hh):
    """One step of a tanh RNN.

    x: (B, I) inputs of step t; h: (B, H) state after step t - 1.
    W_ih (H, I), W_hh (H, H), b_ih (H,), b_hh (H,): the parameters.
    Returns the new state, (B, H).
    """
    # TODO: return tanh(W_ih x + b_ih + W_hh h + b_hh) for every row of x and h (shape (B, H))
    ### BEGIN SOLUTION
    return torch.tanh(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh)
    ### END SOLUTION

# %% [code]
grader.check("rnn_step")

# %% [markdown]
# ## Question 2: the loop over time (5 points)
#
# Unroll `rnn_step` over a sequence: start from `h0` (zeros if it is `None`), feed each
# new state into the next step, and keep every state. Return the states stacked into
# `(T, B, H)` and the last one. Refuse inputs that are not `(T, B, I)` with `T >= 1`, and
# a state that is not `(B, H)`, with a `ValueError` whose message says what was expected
# (a batch-first tensor passed by mistake is caught this way when a state is given).

# %% [answer] rnn_forward
def rnn_forward(xs, h0, W_ih, W_hh, b_ih, b_hh):
    """Run rnn_step over a time-major sequence.

    xs: (T, B, I); h0: (B, H), or None for zeros. Parameters as in rnn_step.
    Returns (outputs, h_T): outputs (T, B, H), where outputs[t] is the state after
    reading xs[t], and h_T (B, H), the last state.
    Raises ValueError if xs is not 3-D with T >= 1 and I == W_ih.shape[1], or if h0
    is not (B, H).
    """
    # TODO: check the shapes (ValueError), then loop over xs[0], xs[1], ... carrying the state
    ### BEGIN SOLUTION
    H, I = W_ih.shape
    if xs.ndim != 3 or xs.shape[0] == 0 or xs.shape[2] != I:
        raise ValueError(f"expected xs of shape (T, B, {I}) with T >= 1, got {tuple(xs.shape)}")
    B = xs.shape[1]
    h = xs.new_zeros(B, H) if h0 is None else h0
    if tuple(h.shape) != (B, H):
        raise ValueError(f"expected h0 of shape (B, H) = {(B, H)}, got {tuple(h.shape)}")
    outputs = []
    for x in xs:
        h = rnn_step(x, h, W_ih, W_hh, b_ih, b_hh)
        outputs.append(h)
    return torch.stack(outputs), h
    ### END SOLUTION

# %% [code]
grader.check("rnn_forward")

# %% [markdown]
# ## Every check again
#
# After Restart and Run All, read this cell's output before you hand the notebook in: the
# teacher's grader runs the same checks, and counts what each question's `grader.check` cell shows.

# %% [code]
grader.check_all()

# %% [checks]
T, B, I, H = 5, 3, 4, 2  # I != H, so a transposed weight cannot slip through

from torch import nn

for _owner, _name, _label in [(torch, "rnn_tanh_cell", "torch.rnn_tanh_cell"), (torch, "rnn_tanh", "torch.rnn_tanh"),
                               (nn, "RNN", "nn.RNN"), (nn, "RNNCell", "nn.RNNCell")]:
    forbid(_owner, _name, _label)



def rnn_reference(nonlinearity="tanh"):
    """A float64 nn.RNN and its parameters, in the order the student's functions take them."""
    torch.manual_seed(20)
    rnn = nn.RNN(I, H, nonlinearity=nonlinearity).double()
    return rnn, (rnn.weight_ih_l0.detach(), rnn.weight_hh_l0.detach(),
                 rnn.bias_ih_l0.detach(), rnn.bias_hh_l0.detach())


def step_inputs():
    generator = torch.Generator().manual_seed(21)
    return (torch.randn(B, I, generator=generator, dtype=torch.float64),
            torch.randn(B, H, generator=generator, dtype=torch.float64))


def step_mistakes(x, h, W_ih, W_hh, b_ih, b_hh):
    pre = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
    return {
        "you used ReLU; nn.RNN's default nonlinearity is tanh": torch.relu(pre),
        "the tanh is missing: h_t = tanh(...)": pre,
        "b_hh is missing: nn.RNN adds both biases, b_ih and b_hh": torch.tanh(pre - b_hh),
        "b_ih is missing: nn.RNN adds both biases, b_ih and b_hh": torch.tanh(pre - b_ih),
        "the previous state h is ignored: add W_hh h (h @ W_hh.T)": torch.tanh(x @ W_ih.T + b_ih + b_hh),
    }


@check_of("rnn_step", 1, "returns a (B, H) tensor")
def _(ns):
    _, weights = rnn_reference()
    x, h = step_inputs()
    expect_tensor(call(ns, "rnn_step", x, h, *weights), (B, H), "rnn_step(x (B, I), h (B, H), ...)")


@check_of("rnn_step", 2, "equals one step of nn.RNN")
def _(ns):
    rnn, weights = rnn_reference()
    x, h = step_inputs()
    got = call(ns, "rnn_step", x, h, *weights)
    expect_tensor(got, (B, H), "rnn_step's result")
    expected = rnn(x[None], h[None])[1][0].detach()
    diagnose(got, expected, step_mistakes(x, h, *weights), "rnn_step differs from nn.RNN's step")


@check_of("rnn_step", 1, "treats every row (example) on its own")
def _(ns):
    _, weights = rnn_reference()
    x, h = step_inputs()
    together = call(ns, "rnn_step", x, h, *weights)
    alone = torch.cat([call(ns, "rnn_step", x[b:b + 1], h[b:b + 1], *weights) for b in range(B)])
    expect_tensor(together, (B, H), "rnn_step's result")
    if largest_difference(together, alone) > 1e-12:
        raise CheckFailed("row b of the result depends on other rows of the batch: use x @ W_ih.T and h @ W_hh.T, "
                          "which treat each row separately, and no sum or mean over the batch")


def sequence():
    generator = torch.Generator().manual_seed(22)
    return (torch.randn(T, B, I, generator=generator, dtype=torch.float64),
            torch.randn(B, H, generator=generator, dtype=torch.float64))


@check_of("rnn_forward", 1, "returns outputs (T, B, H) and the last state (B, H)")
def _(ns):
    _, weights = rnn_reference()
    xs, h0 = sequence()
    result = call(ns, "rnn_forward", xs, h0, *weights)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise CheckFailed(f"rnn_forward should return a pair (outputs, h_T), got {type(result).__name__}")
    outputs, last = result
    expect_tensor(outputs, (T, B, H), "outputs")
    expect_tensor(last, (B, H), "h_T")
    if largest_difference(outputs[-1], last) > 0:
        raise CheckFailed("h_T should be the state after the last step, outputs[-1]")


@check_of("rnn_forward", 2, "equals nn.RNN at every step, from a given state")
def _(ns):
    rnn, weights = rnn_reference()
    xs, h0 = sequence()
    outputs, _ = call(ns, "rnn_forward", xs, h0, *weights)
    expect_tensor(outputs, (T, B, H), "outputs")
    expected = rnn(xs, h0[None])[0].detach()
    for t in range(T):
        if largest_difference(outputs[t], expected[t]) > 1e-9:
            if t == 0:
                raise CheckFailed("outputs[0] differs from nn.RNN's first state: start from h0 and call rnn_step")
            if largest_difference(outputs[t], rnn(xs[t:t + 1], h0[None])[0][0].detach()) < 1e-9:
                raise CheckFailed(f"outputs[{t}] is a step from h0, not from outputs[{t - 1}]: "
                                  "carry the new state into the next step")
            raise CheckFailed(f"outputs[{t}] differs from nn.RNN's state after step {t} "
                              f"(largest difference {largest_difference(outputs[t], expected[t]):.2g})")


@check_of("rnn_forward", 1, "starts from zeros when h0 is None")
def _(ns):
    rnn, weights = rnn_reference()
    xs, _ = sequence()
    outputs, _ = call(ns, "rnn_forward", xs, None, *weights)
    expect_tensor(outputs, (T, B, H), "outputs with h0=None")
    diagnose(outputs, rnn(xs)[0].detach(), {}, "with h0=None, outputs differ from nn.RNN's from a zero state")


@check_of("rnn_forward", 1, "refuses inputs and states of the wrong shape with a ValueError")
def _(ns):
    _, weights = rnn_reference()
    xs, h0 = sequence()
    function = ns.get("rnn_forward")
    if not callable(function):
        raise CheckFailed("rnn_forward is not defined: run its cell first")
    expect_error(ValueError, function, xs[0], h0, *weights, what="xs of shape (B, I), without a time axis")
    expect_error(ValueError, function, xs[:0], h0, *weights, what="xs with T = 0 steps")
    expect_error(ValueError, function, xs.transpose(0, 1), h0, *weights,
                 what="a batch-first xs (B, T, I) with a state for B sequences")

# %% [mistakes]
MISTAKES = [
    {"name": "ReLU instead of tanh", "question": "rnn_step",
     "replace": ("torch.tanh(x @ W_ih.T", "torch.relu(x @ W_ih.T"),
     "check": "equals one step of nn.RNN", "says": "ReLU"},
    {"name": "the hidden bias dropped", "question": "rnn_step",
     "replace": ("h @ W_hh.T + b_hh)", "h @ W_hh.T)"),
     "check": "equals one step of nn.RNN", "says": "b_hh is missing"},
    {"name": "the state not carried to the next step", "question": "rnn_forward",
     "replace": ("h = rnn_step(x, h,", "h = h0 if h0 is not None else h; h = rnn_step(x, h,"),
     "check": "equals nn.RNN at every step, from a given state", "says": "carry the new state"},
    {"name": "PyTorch's own cell called instead of the formula", "question": "rnn_step",
     "replace": ("return torch.tanh(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh)",
                 "return torch.rnn_tanh_cell(x, h, W_ih, W_hh, b_ih, b_hh)"),
     "check": "equals one step of nn.RNN", "says": "calls torch.rnn_tanh_cell"},
]
