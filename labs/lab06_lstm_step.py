# %% [markdown]
# # Lab 6 · The LSTM step
#
# Companion to chapter 6, *An LSTM from scratch*. You write one step of the LSTM with
# PyTorch's fused parameter layout, and the loop that runs it over a sequence. The
# grader copies the weights of an `nn.LSTM` into your functions and compares `h` and `c`
# at every step; it also compares the gradients that flow through your code with
# `nn.LSTM`'s.
#
# The four gates are computed by one product: `W_ih` `(4H, I)` and `W_hh` `(4H, H)` stack
# their rows in `nn.LSTM`'s order: input $i$, forget $f$, candidate $g$, output $o$.

# %% [given]
import torch
from torch import nn

# %% [markdown]
# ## Question 1: one step (6 points)
#
# With $a = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}$ cut into four blocks of $H$
# columns, $a_i, a_f, a_g, a_o$:
#
# $$i = \sigma(a_i),\quad f = \sigma(a_f),\quad g = \tanh(a_g),\quad o = \sigma(a_o),$$
# $$c_t = f \odot c_{t-1} + i \odot g,\qquad h_t = o \odot \tanh(c_t).$$
#
# Use only differentiable operations on the inputs (no `.data`, `.detach()` or
# in-place writes into them): the grader also backpropagates through your step.

# %% [answer] lstm_step
def lstm_step(x, state, W_ih, W_hh, b_ih, b_hh):
    """One LSTM step.

    x: (B, I); state: (h, c), both (B, H).
    W_ih (4H, I), W_hh (4H, H), b_ih (4H,), b_hh (4H,), gates stacked as i, f, g, o.
    Returns the new (h, c), both (B, H).
    """
    h, c = state
    # TODO: compute a, cut it into i, f, g, o (a.chunk(4, dim=-1)), apply the gates' nonlinearities, update c then h
    ### BEGIN SOLUTION
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c
    ### END SOLUTION

# %% [code]
grader.check("lstm_step")

# %% [markdown]
# ## Question 2: the loop over time (4 points)
#
# Run `lstm_step` over a time-major sequence `xs` `(T, B, I)`, from `state` (or from
# $h = c = 0$ when it is `None`), and return every $h_t$ stacked into `(T, B, H)` and
# the final pair `(h, c)`, as `nn.LSTM` does. Refuse a state that is not a pair of
# `(B, H)` tensors with a `ValueError` that says what was expected.

# %% [answer] lstm_forward
def lstm_forward(xs, state, W_ih, W_hh, b_ih, b_hh):
    """Run lstm_step over xs (T, B, I).

    state: (h0, c0), both (B, H), or None for zeros. Parameters as in lstm_step.
    Returns (outputs (T, B, H), (h_T, c_T)).
    Raises ValueError if state is not a pair of (B, H) tensors.
    """
    # TODO: make or check the state (ValueError), then loop over the steps, keeping every h
    ### BEGIN SOLUTION
    B, H = xs.shape[1], W_hh.shape[1]
    if state is None:
        state = (xs.new_zeros(B, H), xs.new_zeros(B, H))
    if not (isinstance(state, tuple) and len(state) == 2
            and all(isinstance(part, torch.Tensor) and tuple(part.shape) == (B, H) for part in state)):
        raise ValueError(f"expected a state (h, c) of two tensors of shape (B, H) = {(B, H)}")
    outputs = []
    for x in xs:
        state = lstm_step(x, state, W_ih, W_hh, b_ih, b_hh)
        outputs.append(state[0])
    return torch.stack(outputs), state
    ### END SOLUTION

# %% [code]
grader.check("lstm_forward")

# %% [markdown]
# ## Every check again
#
# After Restart and Run All, read this cell's output before you hand the notebook in: the
# teacher's grader runs the same checks, and counts what each question's `grader.check` cell shows.

# %% [code]
grader.check_all()

# %% [checks]
T, B, I, H = 5, 3, 4, 2

from torch import nn

for _owner, _name, _label in [(torch, "lstm_cell", "torch.lstm_cell"), (torch, "lstm", "torch.lstm"),
                               (nn, "LSTM", "nn.LSTM"), (nn, "LSTMCell", "nn.LSTMCell")]:
    forbid(_owner, _name, _label)



def lstm_reference():
    """A float64 nn.LSTM with a forget-gate bias far from zero, so gate mix-ups show, and its parameters."""
    torch.manual_seed(60)
    lstm = nn.LSTM(I, H).double()
    with torch.no_grad():
        lstm.bias_ih_l0[H:2 * H] += 1.5
    return lstm, tuple(p.detach() for p in (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0))


def lstm_inputs():
    generator = torch.Generator().manual_seed(61)
    draw = lambda *shape: torch.randn(*shape, generator=generator, dtype=torch.float64)
    return draw(T, B, I), (draw(B, H), draw(B, H))


def variant(x, state, weights, order="ifgo", gate=torch.sigmoid, forget=torch.sigmoid, candidate=torch.tanh,
            cell_out=torch.tanh, new_c=None):
    """An LSTM step with one thing changed: the common mistakes the checks recognise."""
    h, c = state
    W_ih, W_hh, b_ih, b_hh = weights
    blocks = dict(zip(order, (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=-1)))
    i, f, g, o = gate(blocks["i"]), forget(blocks["f"]), candidate(blocks["g"]), gate(blocks["o"])
    c = f * c + i * g if new_c is None else new_c(i, f, g, o, c)
    return o * cell_out(c), c


def step_mistakes(x, state, weights):
    """{hint: (h, c)} of each recognised mistake."""
    return {
        "check the forget gate's nonlinearity (sigmoid)": variant(x, state, weights, forget=torch.tanh),
        "check the candidate g's nonlinearity (tanh, not sigmoid)": variant(x, state, weights, candidate=torch.sigmoid),
        "h_t = o * tanh(c_t): the tanh of the new cell state is missing": variant(x, state, weights,
                                                                                 cell_out=lambda c: c),
        "the gate order is nn.LSTM's i, f, g, o (you used i, f, o, g)": variant(x, state, weights, order="ifog"),
        "the gate order is nn.LSTM's i, f, g, o (you swapped i and f)": variant(x, state, weights, order="figo"),
        "c_t = f * c_{t-1} + i * g: the forget gate scales the old cell, the input gate the candidate":
            variant(x, state, weights, new_c=lambda i, f, g, o, c: i * c + f * g),
        "c_t keeps the old cell through the forget gate: c_t = f * c_{t-1} + i * g":
            variant(x, state, weights, new_c=lambda i, f, g, o, c: c + i * g),
    }


def student_step(ns, x, state, weights):
    result = call(ns, "lstm_step", x, state, *weights)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise CheckFailed(f"lstm_step should return the pair (h, c), got {type(result).__name__}")
    expect_tensor(result[0], (B, H), "h")
    expect_tensor(result[1], (B, H), "c")
    return result


@check_of("lstm_step", 1, "returns (h, c), both (B, H)")
def _(ns):
    _, weights = lstm_reference()
    xs, state = lstm_inputs()
    student_step(ns, xs[0], state, weights)


@check_of("lstm_step", 3, "equals nn.LSTM's step from a nonzero state")
def _(ns):
    lstm, weights = lstm_reference()
    xs, state = lstm_inputs()
    h, c = student_step(ns, xs[0], state, weights)
    _, (h_ref, c_ref) = lstm(xs[:1], (state[0][None], state[1][None]))
    mistakes = step_mistakes(xs[0], state, weights)
    diagnose(c, c_ref[0].detach(), {hint: wrong[1] for hint, wrong in mistakes.items()},
             "c_t differs from nn.LSTM's at step 0")
    diagnose(h, h_ref[0].detach(), {hint: wrong[0] for hint, wrong in mistakes.items()},
             "h_t differs from nn.LSTM's at step 0")


@check_of("lstm_step", 2, "passes gradients through like nn.LSTM")
def _(ns):
    lstm, weights = lstm_reference()
    xs, state = lstm_inputs()
    leaves = [w.clone().requires_grad_() for w in (xs[0], *state, *weights)]
    h, c = student_step(ns, leaves[0], (leaves[1], leaves[2]), leaves[3:])
    h_value, c_value = variant(xs[0], state, weights)
    if largest_difference(h, h_value) > 1e-9 or largest_difference(c, c_value) > 1e-9:
        raise CheckFailed("the step's values differ from nn.LSTM's, so its gradients do too: "
                          "fix the check 'equals nn.LSTM's step from a nonzero state' first")
    if not (h.requires_grad and c.requires_grad):
        raise CheckFailed("h or c does not depend on the inputs for autograd: avoid .data, .detach() and "
                          "building new tensors from numbers (torch.tensor(...)) inside lstm_step")
    upstream = torch.linspace(-1, 1, 2 * B * H, dtype=torch.float64)
    got = torch.autograd.grad((h, c), leaves, (upstream[:B * H].view(B, H), upstream[B * H:].view(B, H)),
                              allow_unused=True)
    reference = [w.clone().requires_grad_() for w in (xs[0], *state, *weights)]
    h_ref, c_ref = variant(reference[0], (reference[1], reference[2]), reference[3:])
    want = torch.autograd.grad((h_ref, c_ref), reference, (upstream[:B * H].view(B, H), upstream[B * H:].view(B, H)))
    names = ("x", "h_prev", "c_prev", "W_ih", "W_hh", "b_ih", "b_hh")
    for name, g, w in zip(names, got, want):
        if g is None:
            raise CheckFailed(f"no gradient reaches {name}: use it as it is, without .detach() or .data")
        if largest_difference(g, w) > 1e-9:
            raise CheckFailed(f"the gradient with respect to {name} differs from nn.LSTM's "
                              f"(largest difference {largest_difference(g, w):.2g}): keep every operation "
                              "differentiable (no .data, .detach(), in-place writes or rounding)")


def student_forward(ns, xs, state, weights):
    result = call(ns, "lstm_forward", xs, state, *weights)
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], tuple)):
        raise CheckFailed("lstm_forward should return (outputs, (h_T, c_T))")
    outputs, (h, c) = result
    expect_tensor(outputs, (T, B, H), "outputs")
    expect_tensor(h, (B, H), "h_T")
    expect_tensor(c, (B, H), "c_T")
    return outputs, (h, c)


@check_of("lstm_forward", 2, "equals nn.LSTM at every step, h and c")
def _(ns):
    lstm, weights = lstm_reference()
    xs, state = lstm_inputs()
    outputs, (h, c) = student_forward(ns, xs, state, weights)
    expected, (h_ref, c_ref) = lstm(xs, (state[0][None], state[1][None]))
    for t in range(T):
        if largest_difference(outputs[t], expected[t]) > 1e-9:
            raise CheckFailed(f"outputs[{t}] differs from nn.LSTM's h after step {t} "
                              f"(largest difference {largest_difference(outputs[t], expected[t]):.2g})"
                              + (": carry both h and c from step to step" if t > 0 else ""))
    diagnose(c, c_ref[0].detach(), {}, "c_T differs from nn.LSTM's final cell state")
    diagnose(h, h_ref[0].detach(), {}, "h_T differs from nn.LSTM's final hidden state")


@check_of("lstm_forward", 1, "starts from h = c = 0 when state is None")
def _(ns):
    lstm, weights = lstm_reference()
    xs, _ = lstm_inputs()
    outputs, _ = student_forward(ns, xs, None, weights)
    diagnose(outputs, lstm(xs)[0].detach(), {}, "with state=None, outputs differ from nn.LSTM's from zeros")


@check_of("lstm_forward", 1, "refuses a malformed state with a ValueError")
def _(ns):
    _, weights = lstm_reference()
    xs, (h, c) = lstm_inputs()
    function = ns.get("lstm_forward")
    if not callable(function):
        raise CheckFailed("lstm_forward is not defined: run its cell first")
    expect_error(ValueError, function, xs, h, *weights, what="a state that is h alone, without c")
    expect_error(ValueError, function, xs, (h, c[:1]), *weights, what="a state whose c has the wrong batch size")

# %% [mistakes]
MISTAKES = [
    {"name": "the forget gate through tanh instead of sigmoid", "question": "lstm_step",
     "replace": ("torch.sigmoid(f) * c", "torch.tanh(f) * c"),
     "check": "equals nn.LSTM's step from a nonzero state", "says": "forget gate's nonlinearity (sigmoid)"},
    {"name": "the gates in the order i, f, o, g", "question": "lstm_step",
     "replace": ("i, f, g, o = (", "i, f, o, g = ("),
     "check": "equals nn.LSTM's step from a nonzero state", "says": "gate order"},
    {"name": "the state detached inside the step", "question": "lstm_step",
     "replace": ("h, c = state\n", "h, c = state[0].detach(), state[1].detach()\n"),
     "check": "passes gradients through like nn.LSTM", "says": "no gradient reaches h_prev"},
    {"name": "PyTorch's own cell called instead of the formula", "question": "lstm_step",
     "replace": ("    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=-1)\n",
                 "    return torch.lstm_cell(x, (h, c), W_ih, W_hh, b_ih, b_hh)\n"),
     "check": "equals nn.LSTM's step from a nonzero state", "says": "calls torch.lstm_cell"},
]
