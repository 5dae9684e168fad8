# %% [markdown]
# # Lab 9 · The GRU step
#
# Companion to chapter 9, *A GRU from scratch*. You write one step of the GRU exactly
# as `nn.GRU` computes it, then the loop over a sequence. The grader copies an
# `nn.GRU`'s weights into your functions and compares the states, and checks with
# `torch.autograd.gradcheck` that gradients flow through your step.
#
# `W_ih` `(3H, I)` and `W_hh` `(3H, H)` stack their rows in `nn.GRU`'s order: reset $r$,
# update $z$, candidate $n$; so do the biases `(3H,)`.

# %% [given]
import torch
from torch import nn

# %% [markdown]
# ## Question 1: one step (6 points)
#
# Cut $W_{ih} x_t + b_{ih}$ into the blocks $(x_r, x_z, x_n)$ and
# $W_{hh} h_{t-1} + b_{hh}$ into $(h_r, h_z, h_n)$. Then
#
# $$r = \sigma(x_r + h_r),\quad z = \sigma(x_z + h_z),\quad n = \tanh(x_n + r \odot h_n),$$
# $$h_t = (1 - z) \odot n + z \odot h_{t-1}.$$
#
# Two details matter for equality with `nn.GRU`: the reset gate multiplies $h_n$, which
# already includes the bias $b_{hn}$ (Cho et al.'s paper applies it to $h_{t-1}$ before
# the product instead), and $z$ is the share of the *old* state that is kept.

# %% [answer] gru_step
def gru_step(x, h, W_ih, W_hh, b_ih, b_hh):
    """One GRU step as nn.GRU computes it.

    x: (B, I); h: (B, H). W_ih (3H, I), W_hh (3H, H), b_ih (3H,), b_hh (3H,), blocks r, z, n.
    Returns the new state, (B, H).
    """
    # TODO: compute the blocks of both products (.chunk(3, dim=-1)), then r, z, n and the mix of n and h
    ### BEGIN SOLUTION
    x_r, x_z, x_n = (x @ W_ih.T + b_ih).chunk(3, dim=-1)
    h_r, h_z, h_n = (h @ W_hh.T + b_hh).chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h
    ### END SOLUTION

# %% [code]
grader.check("gru_step")

# %% [markdown]
# ## Question 2: the loop over time (4 points)
#
# Run `gru_step` over a time-major sequence `xs` `(T, B, I)` from `h0` (zeros when it is
# `None`); return the states stacked into `(T, B, H)` and the last one. Refuse an `h0`
# that is not `(B, H)` with a `ValueError` that says what was expected.

# %% [answer] gru_forward
def gru_forward(xs, h0, W_ih, W_hh, b_ih, b_hh):
    """Run gru_step over xs (T, B, I) from h0 (B, H) or zeros.

    Returns (outputs (T, B, H), h_T (B, H)). Raises ValueError if h0 is not (B, H).
    """
    # TODO: make or check h0 (ValueError), then loop over the steps, keeping every state
    ### BEGIN SOLUTION
    B, H = xs.shape[1], W_hh.shape[1]
    h = xs.new_zeros(B, H) if h0 is None else h0
    if not isinstance(h, torch.Tensor) or tuple(h.shape) != (B, H):
        raise ValueError(f"expected h0 of shape (B, H) = {(B, H)}, got {getattr(h, 'shape', type(h).__name__)}")
    outputs = []
    for x in xs:
        h = gru_step(x, h, W_ih, W_hh, b_ih, b_hh)
        outputs.append(h)
    return torch.stack(outputs), h
    ### END SOLUTION

# %% [code]
grader.check("gru_forward")

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

for _owner, _name, _label in [(torch, "gru_cell", "torch.gru_cell"), (torch, "gru", "torch.gru"),
                               (nn, "GRU", "nn.GRU"), (nn, "GRUCell", "nn.GRUCell")]:
    forbid(_owner, _name, _label)



def gru_reference():
    torch.manual_seed(90)
    gru = nn.GRU(I, H).double()
    return gru, tuple(p.detach() for p in (gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0))


def gru_inputs():
    generator = torch.Generator().manual_seed(91)
    return (torch.randn(T, B, I, generator=generator, dtype=torch.float64),
            torch.randn(B, H, generator=generator, dtype=torch.float64))


def gru_variant(x, h, weights, order="rzn", mix="pytorch", reset="after", candidate=torch.tanh):
    """A GRU step with one thing changed: the common mistakes the checks recognise."""
    W_ih, W_hh, b_ih, b_hh = weights
    xb = dict(zip(order, (x @ W_ih.T + b_ih).chunk(3, dim=-1)))
    hb = dict(zip(order, (h @ W_hh.T + b_hh).chunk(3, dim=-1)))
    r, z = torch.sigmoid(xb["r"] + hb["r"]), torch.sigmoid(xb["z"] + hb["z"])
    if reset == "after":
        n = candidate(xb["n"] + r * hb["n"])
    else:  # Cho et al.: the reset gate scales h before W_hn
        H_ = h.shape[-1]
        W_hn, b_hn = W_hh.split([2 * H_, H_])[1], b_hh.split([2 * H_, H_])[1]
        n = candidate(xb["n"] + (r * h) @ W_hn.T + b_hn)
    return (1 - z) * n + z * h if mix == "pytorch" else z * n + (1 - z) * h


def step_mistakes(x, h, weights):
    return {
        "the update gate mixes h and n the wrong way round: nn.GRU keeps z of the old state, "
        "h_t = (1 - z) * n + z * h": gru_variant(x, h, weights, mix="swapped"),
        "the reset gate multiplies h before W_hn (Cho et al.'s form); nn.GRU applies it to "
        "h_n = W_hn h + b_hn": gru_variant(x, h, weights, reset="before"),
        "the blocks are in nn.GRU's order r, z, n (you swapped r and z)": gru_variant(x, h, weights, order="zrn"),
        "the candidate n goes through tanh, not sigmoid": gru_variant(x, h, weights, candidate=torch.sigmoid),
    }


@check_of("gru_step", 1, "returns a (B, H) tensor")
def _(ns):
    _, weights = gru_reference()
    xs, h = gru_inputs()
    expect_tensor(call(ns, "gru_step", xs[0], h, *weights), (B, H), "gru_step(x (B, I), h (B, H), ...)")


@check_of("gru_step", 3, "equals nn.GRU's step from a nonzero state")
def _(ns):
    gru, weights = gru_reference()
    xs, h = gru_inputs()
    got = call(ns, "gru_step", xs[0], h, *weights)
    expect_tensor(got, (B, H), "gru_step's result")
    expected = gru(xs[:1], h[None])[1][0].detach()
    diagnose(got, expected, step_mistakes(xs[0], h, weights), "h_t differs from nn.GRU's at step 0")


@check_of("gru_step", 2, "passes torch.autograd.gradcheck against its own values")
def _(ns):
    _, weights = gru_reference()
    xs, h = gru_inputs()
    function = ns.get("gru_step")
    if not callable(function):
        raise CheckFailed("gru_step is not defined: run its cell first")
    inputs = tuple(t.clone().requires_grad_() for t in (xs[0], h, *weights))
    result = function(*inputs)
    expect_tensor(result, (B, H), "gru_step's result")
    if not result.requires_grad:
        raise CheckFailed("the result does not depend on the inputs for autograd: avoid .data and .detach()")
    try:
        torch.autograd.gradcheck(function, inputs, raise_exception=True)
    except RuntimeError as error:  # gradcheck's GradcheckError is one
        raise CheckFailed("autograd's gradient of gru_step differs from central differences: keep every "
                          f"operation differentiable (no .data, .detach(), in-place writes) ({str(error).splitlines()[0].rstrip(',')})")


def student_forward(ns, xs, h0, weights):
    result = call(ns, "gru_forward", xs, h0, *weights)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise CheckFailed(f"gru_forward should return a pair (outputs, h_T), got {type(result).__name__}")
    expect_tensor(result[0], (T, B, H), "outputs")
    expect_tensor(result[1], (B, H), "h_T")
    return result


@check_of("gru_forward", 2, "equals nn.GRU at every step")
def _(ns):
    gru, weights = gru_reference()
    xs, h0 = gru_inputs()
    outputs, last = student_forward(ns, xs, h0, weights)
    expected = gru(xs, h0[None])[0].detach()
    for t in range(T):
        if largest_difference(outputs[t], expected[t]) > 1e-9:
            raise CheckFailed(f"outputs[{t}] differs from nn.GRU's state after step {t} "
                              f"(largest difference {largest_difference(outputs[t], expected[t]):.2g})"
                              + (": carry the new state into the next step" if t > 0 else ""))
    diagnose(last, expected[-1], {}, "h_T differs from the state after the last step")


@check_of("gru_forward", 1, "starts from zeros when h0 is None")
def _(ns):
    gru, weights = gru_reference()
    xs, _ = gru_inputs()
    outputs, _ = student_forward(ns, xs, None, weights)
    diagnose(outputs, gru(xs)[0].detach(), {}, "with h0=None, outputs differ from nn.GRU's from zeros")


@check_of("gru_forward", 1, "refuses an h0 of the wrong shape with a ValueError")
def _(ns):
    _, weights = gru_reference()
    xs, h0 = gru_inputs()
    function = ns.get("gru_forward")
    if not callable(function):
        raise CheckFailed("gru_forward is not defined: run its cell first")
    expect_error(ValueError, function, xs, h0[None], *weights, what="an h0 of shape (1, B, H), as nn.GRU takes it")
    expect_error(ValueError, function, xs.transpose(0, 1), h0, *weights,
                 what="a batch-first xs (B, T, I) with a state for B sequences")

# %% [mistakes]
MISTAKES = [
    {"name": "the update gate mixing h and n the wrong way round", "question": "gru_step",
     "replace": ("return (1 - z) * n + z * h", "return z * n + (1 - z) * h"),
     "check": "equals nn.GRU's step from a nonzero state", "says": "the wrong way round"},
    {"name": "the reset gate applied before the hidden product (the paper's form)", "question": "gru_step",
     "replace": ("n = torch.tanh(x_n + r * h_n)",
                 "n = torch.tanh(x_n + (r * h) @ W_hh[2 * h.shape[1]:].T + b_hh[2 * h.shape[1]:])"),
     "check": "equals nn.GRU's step from a nonzero state", "says": "Cho et al."},
    {"name": "PyTorch's own cell called instead of the formula", "question": "gru_step",
     "replace": ("    x_r, x_z, x_n = (x @ W_ih.T + b_ih).chunk(3, dim=-1)\n",
                 "    return torch.gru_cell(x, h, W_ih, W_hh, b_ih, b_hh)\n"),
     "check": "equals nn.GRU's step from a nonzero state", "says": "calls torch.gru_cell"},
    {"name": "a gate detached from the graph", "question": "gru_step",
     "replace": ("z = torch.sigmoid(x_z + h_z)", "z = torch.sigmoid(x_z + h_z).detach()"),
     "check": "passes torch.autograd.gradcheck against its own values", "says": "differs from central differences"},
]
