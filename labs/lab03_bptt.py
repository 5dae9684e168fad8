# %% [markdown]
# # Lab 3 · Backpropagation through time, by hand
#
# Companion to chapter 3, *Backpropagation through time*. You write the backward pass
# of the tanh RNN: first for one step, then for a whole sequence. The grader compares
# your gradients with PyTorch's autograd in float64, and runs
# `torch.autograd.gradcheck`, which compares them with central differences.
#
# Notation: $a_t = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}$ and $h_t = \tanh(a_t)$.
# A gradient is named after what it is the gradient *of the loss with respect to*:
# `dh` is $\partial L/\partial h_t$, `dW_hh` is $\partial L/\partial W_{hh}$, and so on.
# Parameter gradients are summed over the batch (and, in question 2, over time).

# %% [given]
import torch


def rnn_step_forward(x, h_prev, W_ih, W_hh, b_ih, b_hh):
    """One tanh RNN step. Returns (h, cache) with cache = (x, h_prev, W_ih, W_hh, h)."""
    h = torch.tanh(x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)
    return h, (x, h_prev, W_ih, W_hh, h)


def rnn_forward(xs, h0, W_ih, W_hh, b_ih, b_hh):
    """Run rnn_step_forward over xs (T, B, I) from h0 (B, H). Returns (hs (T, B, H), caches)."""
    hs, caches, h = [], [], h0
    for x in xs:
        h, cache = rnn_step_forward(x, h, W_ih, W_hh, b_ih, b_hh)
        hs.append(h)
        caches.append(cache)
    return torch.stack(hs), caches

# %% [markdown]
# ## Question 1: the backward pass of one step (5 points)
#
# Given `dh` $= \partial L/\partial h_t$ of shape `(B, H)` and the step's cache, return
# the gradients with respect to the step's six inputs. Go back through the tanh first:
# $\partial L/\partial a_t = $ `dh` $\cdot (1 - h_t^2)$, elementwise. Then each of
# $x_t$, $h_{t-1}$ and the parameters enters $a_t$ through one product or sum.

# %% [answer] rnn_step_backward
def rnn_step_backward(dh, cache):
    """Backward pass of rnn_step_forward.

    dh: (B, H), the gradient of the loss with respect to the step's output h.
    cache: (x, h_prev, W_ih, W_hh, h) from rnn_step_forward.
    Returns (dx, dh_prev, dW_ih, dW_hh, db_ih, db_hh) with the shapes of
    x (B, I), h_prev (B, H), W_ih (H, I), W_hh (H, H), b_ih (H,), b_hh (H,).
    """
    x, h_prev, W_ih, W_hh, h = cache
    # TODO: da = dh * (1 - h**2); then dx, dh_prev, dW_ih, dW_hh (sums over the batch), db_ih, db_hh
    ### BEGIN SOLUTION
    da = dh * (1 - h * h)
    dx = da @ W_ih
    dh_prev = da @ W_hh
    dW_ih = da.T @ x
    dW_hh = da.T @ h_prev
    db_ih = da.sum(dim=0)
    db_hh = da.sum(dim=0)
    return dx, dh_prev, dW_ih, dW_hh, db_ih, db_hh
    ### END SOLUTION

# %% [code]
grader.check("rnn_step_backward")

# %% [markdown]
# ## Question 2: through time (6 points)
#
# `dhs[t]` holds the gradient that step $t$'s *own* loss sends to $h_t$ (zeros for a
# step without loss). Step $t$'s state also feeds step $t + 1$, so the whole gradient
# reaching $h_t$ is `dhs[t]` plus the `dh_prev` that step $t + 1$'s backward returned.
# Walk the steps from last to first, and **add up** every step's parameter gradients:
# the same weights are used at every step. Refuse a `dhs` that is not `(T, B, H)` with
# a `ValueError`.

# %% [answer] rnn_backward
def rnn_backward(dhs, caches):
    """Backpropagation through time for rnn_forward.

    dhs: (T, B, H), the gradient of the loss with respect to hs[t] from step t's own loss.
    caches: the T caches that rnn_forward returned.
    Returns (dxs, dh0, dW_ih, dW_hh, db_ih, db_hh): dxs (T, B, I), dh0 (B, H) and the
    parameter gradients summed over time and batch.
    Raises ValueError if dhs is not (T, B, H) for these caches.
    """
    # TODO: check dhs's shape; loop t = T-1, ..., 0 calling rnn_step_backward on dhs[t] + the gradient from step t+1
    ### BEGIN SOLUTION
    T = len(caches)
    B, H = caches[0][1].shape
    if tuple(dhs.shape) != (T, B, H):
        raise ValueError(f"dhs should have shape (T, B, H) = {(T, B, H)}, got {tuple(dhs.shape)}")
    dh_next = torch.zeros_like(dhs[0])
    dxs, totals = [None] * T, None
    for t in reversed(range(T)):
        dx, dh_next, *grads = rnn_step_backward(dhs[t] + dh_next, caches[t])
        dxs[t] = dx
        totals = grads if totals is None else [total + grad for total, grad in zip(totals, grads)]
    return (torch.stack(dxs), dh_next, *totals)
    ### END SOLUTION

# %% [code]
grader.check("rnn_backward")

# %% [markdown]
# ## Every check again
#
# After Restart and Run All, read this cell's output before you hand the notebook in: the
# teacher's grader runs the same checks, and counts what each question's `grader.check` cell shows.

# %% [code]
grader.check_all()

# %% [checks]
T, B, I, H = 4, 3, 5, 2

for _owner, _name, _label in [(torch.autograd, "grad", "torch.autograd.grad"),
                               (torch.autograd, "backward", "torch.autograd.backward (or .backward())"),
                               (torch.Tensor, "backward", ".backward()")]:
    forbid(_owner, _name, _label)

NAMES = ("dx", "dh_prev", "dW_ih", "dW_hh", "db_ih", "db_hh")


def problem():
    """float64 inputs, weights and an upstream gradient, all requiring grad."""
    generator = torch.Generator().manual_seed(30)

    def draw(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=generator, dtype=torch.float64)).requires_grad_()

    xs, h0 = draw(T, B, I), draw(B, H)
    weights = (draw(H, I, scale=0.5), draw(H, H, scale=0.5), draw(H, scale=0.5), draw(H, scale=0.5))
    dhs = torch.randn(T, B, H, generator=generator, dtype=torch.float64)
    return xs, h0, weights, dhs


def autograd_step(x, h_prev, weights, dh):
    """Autograd's gradients of sum(dh * h) for one step, in the order rnn_step_backward returns them."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, h_prev, *weights)]
    h, _ = rnn_step_forward(*leaves)
    return torch.autograd.grad(h, leaves, dh)


def from_da(da, x, h_prev, W_ih, W_hh):
    """The six step gradients that a given dL/da implies."""
    return da @ W_ih, da @ W_hh, da.T @ x, da.T @ h_prev, da.sum(dim=0), da.sum(dim=0)


def step_mistakes(dh, cache):
    """For each gradient's name, {hint: what that mistake would give}."""
    x, h_prev, W_ih, W_hh, h = cache
    da = dh * (1 - h * h)
    no_tanh = from_da(dh, x, h_prev, W_ih, W_hh)
    mistakes = {name: {"the tanh's derivative is missing: multiply dh by (1 - h**2) first": wrong}
                for name, wrong in zip(NAMES, no_tanh)}
    mistakes["dh_prev"]["multiply by W_hh, not its transpose: dh_prev = da @ W_hh"] = da @ W_hh.T
    mistakes["dW_hh"]["dW_hh pairs da with the state that went in, h_prev, not the new h: da.T @ h_prev"] = da.T @ h
    for name in ("db_ih", "db_hh"):
        mistakes[name][f"sum over the batch: {name} = da.sum(dim=0)"] = da.mean(dim=0)
    return mistakes


@check_of("rnn_step_backward", 1, "returns six gradients with the shapes of the step's inputs")
def _(ns):
    xs, h0, weights, dhs = problem()
    h, cache = rnn_step_forward(xs[0].detach(), h0.detach(), *(w.detach() for w in weights))
    grads = call(ns, "rnn_step_backward", dhs[0], cache)
    if not (isinstance(grads, tuple) and len(grads) == 6):
        raise CheckFailed(f"return the tuple (dx, dh_prev, dW_ih, dW_hh, db_ih, db_hh), got {type(grads).__name__}")
    for name, grad, like in zip(NAMES, grads, (xs[0], h0, *weights)):
        expect_tensor(grad, like.shape, name)


@check_of("rnn_step_backward", 3, "equals autograd's gradients of one step")
def _(ns):
    xs, h0, weights, dhs = problem()
    expected = autograd_step(xs[0], h0, weights, dhs[0])
    h, cache = rnn_step_forward(xs[0].detach(), h0.detach(), *(w.detach() for w in weights))
    grads = call(ns, "rnn_step_backward", dhs[0], cache)
    mistakes = step_mistakes(dhs[0], cache)
    for name, grad, want in zip(NAMES, grads, expected):
        expect_tensor(grad, want.shape, name)
        diagnose(grad, want, mistakes.get(name, {}), f"{name} differs from autograd's")


class StepFunction(torch.autograd.Function):
    """The student's backward as the gradient of rnn_step_forward, for gradcheck."""

    backward_pass = None

    @staticmethod
    def forward(ctx, x, h_prev, W_ih, W_hh, b_ih, b_hh):
        h, ctx.cache = rnn_step_forward(x, h_prev, W_ih, W_hh, b_ih, b_hh)
        return h

    @staticmethod
    def backward(ctx, dh):
        return StepFunction.backward_pass(dh, ctx.cache)


def gradcheck(function, inputs, what):
    try:
        torch.autograd.gradcheck(function, inputs, raise_exception=True)
    except RuntimeError as error:  # gradcheck's GradcheckError is one
        first = str(error).splitlines()[0].rstrip(",")
        raise CheckFailed(f"{what}: gradcheck found a gradient that differs from central differences ({first})")


@check_of("rnn_step_backward", 1, "passes torch.autograd.gradcheck")
def _(ns):
    xs, h0, weights, _ = problem()
    StepFunction.backward_pass = lambda dh, cache: call(ns, "rnn_step_backward", dh, cache)
    gradcheck(StepFunction.apply, (xs[0], h0, *weights), "rnn_step_backward")


def student_sequence_gradients(ns):
    xs, h0, weights, dhs = problem()
    _, caches = rnn_forward(xs.detach(), h0.detach(), *(w.detach() for w in weights))
    return call(ns, "rnn_backward", dhs, caches)


@check_of("rnn_backward", 1, "returns dxs (T, B, I), dh0 (B, H) and four parameter gradients")
def _(ns):
    xs, h0, weights, _ = problem()
    grads = student_sequence_gradients(ns)
    if not (isinstance(grads, tuple) and len(grads) == 6):
        raise CheckFailed(f"return the tuple (dxs, dh0, dW_ih, dW_hh, db_ih, db_hh), got {type(grads).__name__}")
    for name, grad, like in zip(("dxs", "dh0", *NAMES[2:]), grads, (xs, h0, *weights)):
        expect_tensor(grad, like.shape, name)


def step_contributions(xs, h0, weights, dhs):
    """Each step's share of the parameter gradients, and their sum without any flow back in time.

    Every step gets its own copy of the weights, so autograd's gradient of each copy is
    that step's term of the sum over time; the shares of a common mistake are built from them.
    """
    copies = [[w.detach().clone().requires_grad_() for w in weights] for _ in range(T)]
    h, hs = h0.detach(), []
    for t in range(T):
        h, _ = rnn_step_forward(xs[t].detach(), h, *copies[t])
        hs.append(h)
    steps = [torch.autograd.grad(torch.stack(hs), copy, dhs, retain_graph=True) for copy in copies]
    befores = [h0.detach(), *(h.detach() for h in hs[:-1])]
    own = [autograd_step(xs[t], befores[t], weights, dhs[t])[2:] for t in range(T)]
    return steps, [sum(parts) for parts in zip(*own)]


@check_of("rnn_backward", 3, "equals autograd through the whole sequence")
def _(ns):
    xs, h0, weights, dhs = problem()
    hs, _ = rnn_forward(xs, h0, *weights)
    expected = torch.autograd.grad(hs, (xs, h0, *weights), dhs)
    grads = student_sequence_gradients(ns)
    names = ("dxs", "dh0", *NAMES[2:])
    steps, own = step_contributions(xs, h0, weights, dhs)
    for k, (name, grad, want) in enumerate(zip(names, grads, expected)):
        expect_tensor(grad, want.shape, name)
        if name == "dxs":
            if largest_difference(grad[-1], want[-1]) < 1e-9 and largest_difference(grad, want) > 1e-9:
                raise CheckFailed("dxs is right at the last step only: the gradient reaching h_t is dhs[t] plus "
                                  "the dh_prev of step t + 1; add it before calling rnn_step_backward")
        mistakes = []
        if k >= 2:
            summed = f"{name} holds one step's gradient, not the sum over time: add up (+=) every step's {name}"
            mistakes += [(summed, step[k - 2]) for step in steps]
            mistakes.append((f"{name} misses the gradient flowing back from later steps: "
                             "pass dhs[t] + (dh_prev of step t + 1) to rnn_step_backward", own[k - 2]))
        diagnose(grad, want, mistakes, f"{name} differs from autograd's")


class SequenceFunction(torch.autograd.Function):
    """rnn_forward with the student's rnn_backward as its gradient, for gradcheck."""

    backward_pass = None

    @staticmethod
    def forward(ctx, xs, h0, W_ih, W_hh, b_ih, b_hh):
        hs, ctx.caches = rnn_forward(xs, h0, W_ih, W_hh, b_ih, b_hh)
        return hs

    @staticmethod
    def backward(ctx, dhs):
        return SequenceFunction.backward_pass(dhs, ctx.caches)


@check_of("rnn_backward", 1, "passes torch.autograd.gradcheck")
def _(ns):
    xs, h0, weights, _ = problem()
    SequenceFunction.backward_pass = lambda dhs, caches: call(ns, "rnn_backward", dhs, caches)
    gradcheck(SequenceFunction.apply, (xs, h0, *weights), "rnn_backward")


@check_of("rnn_backward", 1, "refuses a dhs of the wrong shape with a ValueError")
def _(ns):
    xs, h0, weights, dhs = problem()
    _, caches = rnn_forward(xs.detach(), h0.detach(), *(w.detach() for w in weights))
    function = ns.get("rnn_backward")
    if not callable(function):
        raise CheckFailed("rnn_backward is not defined: run its cell first")
    expect_error(ValueError, function, dhs[:-1], caches, what="dhs with one step fewer than the caches")
    expect_error(ValueError, function, dhs.transpose(0, 1), caches, what="a batch-first dhs (B, T, H)")

# %% [mistakes]
MISTAKES = [
    {"name": "weight gradients not accumulated across steps", "question": "rnn_backward",
     "replace": ("totals = grads if totals is None else [total + grad for total, grad in zip(totals, grads)]",
                 "totals = grads"),
     "check": "equals autograd through the whole sequence", "says": "not the sum over time"},
    {"name": "the gradient from the next step not added", "question": "rnn_backward",
     "replace": ("rnn_step_backward(dhs[t] + dh_next, caches[t])", "rnn_step_backward(dhs[t], caches[t])"),
     "check": "equals autograd through the whole sequence", "says": "dh_prev of step t + 1"},
    {"name": "the tanh's derivative forgotten", "question": "rnn_step_backward",
     "replace": ("da = dh * (1 - h * h)", "da = dh"),
     "check": "equals autograd's gradients of one step", "says": "tanh's derivative is missing"},
    {"name": "autograd called instead of the chain rule", "question": "rnn_step_backward",
     "replace": ("    dx = da @ W_ih\n",
                 "    x_leaf = x.detach().requires_grad_()\n    dx = torch.autograd.grad(x_leaf @ W_ih.T, x_leaf, da)[0]\n"),
     "check": "equals autograd's gradients of one step", "says": "calls torch.autograd.grad"},
]
