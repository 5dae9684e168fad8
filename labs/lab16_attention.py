# %% [markdown]
# # Lab 16 · Attention scores, masks and the context vector
#
# Companion to chapter 16, *Attention*. You write the pieces a decoder uses at every
# step to look back at the encoder: a softmax that gives padding exactly zero weight,
# dot-product attention (scaled and not), and the additive score of Bahdanau et al.
# The grader compares your functions with PyTorch's
# `torch.nn.functional.scaled_dot_product_attention` and with the formulas below, in
# float64, so "right" means "the same numbers".
#
# Shapes are time-major, as in the chapters: one decoder step attends for a batch of
# `B` examples at once. The query is `q` of shape `(B, d)`, one row per example; the
# encoder's `T` states give the keys `K` `(T, B, d)` and the values `V` `(T, B, d_v)`.
# Sequences shorter than `T` are padded: `mask` `(T, B)` is `True` where a position holds
# a real token and `False` on padding (the convention of chapter 13's length mask and of
# `scaled_dot_product_attention`'s boolean `attn_mask`; the opposite of
# `nn.MultiheadAttention`'s `key_padding_mask`).

# %% [given]
import math

import torch

torch.manual_seed(0)

# %% [markdown]
# ## Question 1: a softmax that ignores padding (4 points)
#
# Given scores `e` of shape `(T, B)`, the attention weights of example $b$ are
#
# $$\alpha_{t,b} = \frac{\exp(e_{t,b})}{\sum_{t' : m_{t',b}} \exp(e_{t',b})} \text{ where } m_{t,b}
# \text{ is True}, \qquad \alpha_{t,b} = 0 \text{ where it is False.}$$
#
# The weights of every example (a column) sum to 1 over time, padding gets exactly zero
# weight whatever its score, and large scores (hundreds) must not overflow. Refuse an
# example with no real position at all with a `ValueError` that says so (it has no
# softmax).

# %% [answer] masked_softmax
def masked_softmax(scores, mask):
    """Softmax over time (dim 0) that gives masked-out positions exactly zero weight.

    scores: (T, B) float tensor. mask: (T, B) bool tensor, True where a position holds a
    real token. Returns weights (T, B): each column sums to 1, zero where mask is False.
    Raises ValueError if the shapes differ or a column of mask has no True entry.
    """
    # TODO: check the mask, fill the scores of padding with -inf, then softmax over time (dim=0)
    ### BEGIN SOLUTION
    if scores.shape != mask.shape:
        raise ValueError(f"expected mask of the scores' shape {tuple(scores.shape)}, got {tuple(mask.shape)}")
    if not bool(mask.any(dim=0).all()):
        raise ValueError("a column of mask has no True entry: a sequence with no real position has no softmax")
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=0)
    ### END SOLUTION

# %% [code]
grader.check("masked_softmax")

# %% [markdown]
# ## Question 2: dot-product attention (5 points)
#
# The score of position $t$ is the dot product of the query with its key, divided by
# $\sqrt{d}$ when `scaled` is true (the Transformer's form; Luong et al.'s "dot" score is
# the unscaled one); the context is the weighted sum of the values:
#
# $$e_{t,b} = \frac{k_{t,b} \cdot q_b}{\sqrt{d}}, \qquad \alpha_{\cdot,b} = \operatorname{masked\_softmax}(e_{\cdot,b}),
# \qquad c_b = \sum_t \alpha_{t,b}\, v_{t,b}.$$
#
# Use your `masked_softmax`, and no loop over the batch or over time (`torch.einsum`,
# or `*` with broadcasting and a sum, do it in one call). Return the context `(B, d_v)`
# and the weights `(T, B)`; a heat-map of the weights is the picture of what the decoder
# looked at.

# %% [answer] dot_attention
def dot_attention(q, K, V, mask, scaled=True):
    """Dot-product attention of one query per example.

    q: (B, d); K: (T, B, d); V: (T, B, d_v); mask: (T, B) bool, True on real positions.
    scaled: divide the scores by sqrt(d).
    Returns (context (B, d_v), weights (T, B)).
    """
    # TODO: scores = q . k_t for every t (divided by sqrt(d) if scaled), weights = masked_softmax, context = sum of weights * V
    ### BEGIN SOLUTION
    scores = torch.einsum("tbd,bd->tb", K, q)
    if scaled:
        scores = scores / math.sqrt(q.shape[-1])
    weights = masked_softmax(scores, mask)
    return torch.einsum("tb,tbv->bv", weights, V), weights
    ### END SOLUTION

# %% [code]
grader.check("dot_attention")

# %% [markdown]
# ## Question 3: the additive score (4 points)
#
# Bahdanau et al. score a position with a one-hidden-layer network of the query and the
# key instead of a dot product, so query and key may have different sizes. In chapter 16
# the query is the decoder's state $s_{k-1}$ and the keys are the encoder's outputs $h_t$,
# $e_{k,t} = v^\top \tanh(W_s s_{k-1} + U_h h_t)$; here, for one decoder step, with query
# $q_b$ and keys $k_{t,b}$ of example $b$:
#
# $$e_{t,b} = v^\top \tanh\big(W_s\, q_b + U_h\, k_{t,b}\big),$$
#
# with `W_s` of shape `(A, d_q)`, `U_h` `(A, d_k)` and `v` `(A,)`, where `A` is the size
# of the hidden layer. As in the chapters, a row is one example, so $W_s q_b$ for all
# rows is `q @ W_s.T`. Compute $W_s q_b$ once per example, not once per position (the
# loop over time is where the cost of a decoder is; chapter 16 goes further and projects
# the keys once per source sentence). Return the scores `(T, B)`; the weights then come
# from `masked_softmax`.

# %% [answer] additive_score
def additive_score(q, K, W_s, U_h, v):
    """Additive (Bahdanau) attention scores.

    q: (B, d_q); K: (T, B, d_k); W_s: (A, d_q); U_h: (A, d_k); v: (A,).
    Returns scores (T, B): v . tanh(W_s q_b + U_h k_tb) for every position t and example b.
    """
    # TODO: project q (B, A) and K (T, B, A), add them with broadcasting, tanh, then dot with v
    ### BEGIN SOLUTION
    return torch.tanh(q @ W_s.T + K @ U_h.T) @ v
    ### END SOLUTION

# %% [code]
grader.check("additive_score")

# %% [markdown]
# ## Every check again
#
# After Restart and Run All, read this cell's output before you hand the notebook in: the
# teacher's grader runs the same checks, and counts what each question's `grader.check` cell shows.

# %% [code]
grader.check_all()

# %% [checks]
import torch.nn.functional as F

B, T, D, DV, A = 3, 5, 4, 2, 6  # sizes that differ, so a transposed axis cannot slip through

for _owner, _name, _label in [(F, "scaled_dot_product_attention", "F.scaled_dot_product_attention"),
                               (torch.nn, "MultiheadAttention", "nn.MultiheadAttention")]:
    forbid(_owner, _name, _label)


def attention_inputs(seed=30):
    """q (B, D), K (T, B, D), V (T, B, DV) and a mask whose columns hold 5, 3 and 1 real positions."""
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(B, D, generator=generator, dtype=torch.float64)
    K = torch.randn(T, B, D, generator=generator, dtype=torch.float64)
    V = torch.randn(T, B, DV, generator=generator, dtype=torch.float64)
    mask = torch.arange(T)[:, None] < torch.tensor([T, 3, 1])[None, :]
    return q, K, V, mask


def scores_of(q, K):
    return torch.einsum("tbd,bd->tb", K, q)


def sdpa(q, K, V, mask, **options):
    """F.scaled_dot_product_attention in its (batch, query, key) layout, back to (B, DV)."""
    return F.scaled_dot_product_attention(q[:, None, :], K.transpose(0, 1), V.transpose(0, 1),
                                          attn_mask=mask.T[:, None, :], **options)[:, 0]


def softmax_mistakes(scores, mask):
    exp = scores.exp()
    return {
        "the padding kept a weight: fill the masked scores with -inf (or use masked_fill), not 0":
            torch.softmax(scores.masked_fill(~mask, 0.0), dim=0),
        "the weights were zeroed after the softmax, so a column no longer sums to 1: mask the scores before it":
            torch.softmax(scores, dim=0) * mask,
        "the mask is used the wrong way round: True marks a real token, False padding":
            torch.softmax(scores.masked_fill(mask, float("-inf")), dim=0),
        "the softmax runs over the batch axis: use dim=0, the positions (time) of one example":
            torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=1),
        "the exponentials of the padding are in the denominator: sum only over real positions":
            exp * mask / exp.sum(dim=0, keepdim=True),
    }


def reference_softmax(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=0)


@check_of("masked_softmax", 1, "returns (T, B) weights that sum to 1 for every example")
def _(ns):
    q, K, _, mask = attention_inputs()
    weights = call(ns, "masked_softmax", scores_of(q, K), mask)
    expect_tensor(weights, (T, B), "masked_softmax(scores (T, B), mask (T, B))")
    sums = weights.sum(dim=0)
    if not bool(torch.isfinite(sums).all()):
        raise CheckFailed("an example's weights are nan: every score of that column was masked out. Is the mask "
                          "used the wrong way round? True marks a real token, False padding")
    if largest_difference(sums, torch.ones_like(sums)) > 1e-12:
        raise CheckFailed(f"the weights of the {B} examples sum to {[round(float(s), 4) for s in sums]}, not 1: "
                          "normalise over the positions of each example (time, dim=0), after masking")


@check_of("masked_softmax", 2, "gives padding exactly zero weight and equals the softmax over real positions")
def _(ns):
    q, K, _, mask = attention_inputs()
    scores = scores_of(q, K)
    scores[~mask] = 50.0  # padding with a large score, so that a leak shows
    weights = call(ns, "masked_softmax", scores, mask)
    expect_tensor(weights, (T, B), "masked_softmax's result")
    diagnose(weights, reference_softmax(scores, mask), softmax_mistakes(scores, mask),
             "the weights differ from the softmax over the real positions")


@check_of("masked_softmax", 1, "does not overflow with scores in the hundreds, and refuses an empty sequence")
def _(ns):
    q, K, _, mask = attention_inputs()
    scores = 400.0 * scores_of(q, K)
    weights = call(ns, "masked_softmax", scores, mask)
    expect_tensor(weights, (T, B), "masked_softmax's result on large scores")
    if not bool(torch.isfinite(weights).all()):
        raise CheckFailed("large scores give inf or nan weights: exp(400) overflows; subtract each example's "
                          "largest score first, or use torch.softmax, which does")
    diagnose(weights, reference_softmax(scores, mask), {}, "on large scores the weights differ from the softmax")
    empty = mask.clone()
    empty[:, 1] = False
    function = ns.get("masked_softmax")
    expect_error(ValueError, function, scores, empty, what="a mask whose second example has no real position")


def dot_mistakes(q, K, V, mask, scaled):
    scores = scores_of(q, K)
    right = scores / math.sqrt(D) if scaled else scores
    other = scores if scaled else scores / math.sqrt(D)
    context = lambda weights: torch.einsum("tb,tbv->bv", weights, V)
    return [
        ("the scores are not divided by sqrt(d)" if scaled else "scaled=False must leave the scores undivided",
         context(reference_softmax(other, mask))),
        ("the scores were divided by d, not sqrt(d)", context(reference_softmax(scores / D, mask))),
        ("the padding is not masked: use masked_softmax with the mask", context(torch.softmax(right, dim=0))),
    ]


@check_of("dot_attention", 1, "returns a context (B, d_v) and weights (T, B)")
def _(ns):
    q, K, V, mask = attention_inputs()
    result = call(ns, "dot_attention", q, K, V, mask)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise CheckFailed(f"dot_attention should return a pair (context, weights), got {type(result).__name__}")
    expect_tensor(result[0], (B, DV), "the context")
    expect_tensor(result[1], (T, B), "the weights")


@check_of("dot_attention", 2, "equals F.scaled_dot_product_attention, padding masked")
def _(ns):
    q, K, V, mask = attention_inputs()
    context, weights = call(ns, "dot_attention", q, K, V, mask)
    expect_tensor(context, (B, DV), "the context")
    diagnose(context, sdpa(q, K, V, mask), dot_mistakes(q, K, V, mask, True),
             "the context differs from F.scaled_dot_product_attention's")
    expect_tensor(weights, (T, B), "the weights")
    if bool((weights[~mask] != 0).any()):
        raise CheckFailed("padding positions have non-zero weights: pass the mask to masked_softmax")


@check_of("dot_attention", 1, "scaled=False gives Luong's dot score (no division)")
def _(ns):
    q, K, V, mask = attention_inputs(31)
    context, _ = call(ns, "dot_attention", q, K, V, mask, scaled=False)
    expect_tensor(context, (B, DV), "the context with scaled=False")
    diagnose(context, sdpa(q, K, V, mask, scale=1.0), dot_mistakes(q, K, V, mask, False),
             "with scaled=False the context differs from the unscaled dot-product attention")


@check_of("dot_attention", 1, "lets gradients reach the query, keys and values")
def _(ns):
    q, K, V, mask = attention_inputs(32)
    q, K, V = (tensor.clone().requires_grad_() for tensor in (q, K, V))
    context, _ = call(ns, "dot_attention", q, K, V, mask)
    expect_tensor(context, (B, DV), "the context")
    context.sum().backward()
    for name, tensor in (("q", q), ("K", K), ("V", V)):
        if tensor.grad is None or not bool(torch.isfinite(tensor.grad).all()):
            raise CheckFailed(f"no finite gradient reaches {name}: keep the computation in torch "
                              "(no .detach(), .item() or NumPy) and mask with -inf before the softmax only")
    if bool((K.grad[~mask] != 0).any()) or bool((V.grad[~mask] != 0).any()):
        raise CheckFailed("the padding's keys or values receive a gradient: their weight must be exactly zero")


def additive_parameters(seed=33, dq=D, dk=D + 1):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(B, dq, generator=generator, dtype=torch.float64),
            torch.randn(T, B, dk, generator=generator, dtype=torch.float64),
            torch.randn(A, dq, generator=generator, dtype=torch.float64),
            torch.randn(A, dk, generator=generator, dtype=torch.float64),
            torch.randn(A, generator=generator, dtype=torch.float64))


def additive_reference(q, K, W_s, U_h, v):
    scores = torch.empty(T, B, dtype=torch.float64)
    for t in range(T):
        for b in range(B):
            scores[t, b] = v @ torch.tanh(W_s @ q[b] + U_h @ K[t, b])
    return scores


def additive_mistakes(q, K, W_s, U_h, v):
    inner = q @ W_s.T + K @ U_h.T
    return {
        "the tanh is missing: e = v . tanh(W_s q + U_h k)": inner @ v,
        "v is applied before the tanh: e = v . tanh(...), the tanh first": torch.tanh(inner @ v),
        "the query's term is missing: add W_s q to every position's U_h k": torch.tanh(K @ U_h.T) @ v,
        "the scores were summed over the hidden layer without v: take the dot product with v":
            torch.tanh(inner).sum(dim=-1),
    }


@check_of("additive_score", 1, "returns (T, B) scores, with query and key of different sizes")
def _(ns):
    q, K, W_s, U_h, v = additive_parameters()
    expect_tensor(call(ns, "additive_score", q, K, W_s, U_h, v), (T, B),
                  "additive_score(q (B, d_q), K (T, B, d_k), ...)")


@check_of("additive_score", 2, "equals v . tanh(W_s q + U_h k) at every position")
def _(ns):
    q, K, W_s, U_h, v = additive_parameters()
    got = call(ns, "additive_score", q, K, W_s, U_h, v)
    expect_tensor(got, (T, B), "additive_score's result")
    diagnose(got, additive_reference(q, K, W_s, U_h, v), additive_mistakes(q, K, W_s, U_h, v),
             "the scores differ from v . tanh(W_s q_b + U_h k_tb)")


@check_of("additive_score", 1, "treats every example on its own")
def _(ns):
    q, K, W_s, U_h, v = additive_parameters(34)
    together = call(ns, "additive_score", q, K, W_s, U_h, v)
    alone = torch.cat([call(ns, "additive_score", q[b:b + 1], K[:, b:b + 1], W_s, U_h, v) for b in range(B)], dim=1)
    expect_tensor(together, (T, B), "additive_score's result")
    if largest_difference(together, alone) > 1e-12:
        raise CheckFailed("the scores of example b depend on other examples: add q_b's projection (row b of "
                          "q @ W_s.T) only to the keys of the same example, K[:, b] (broadcasting does it)")

# %% [mistakes]
MISTAKES = [
    {"name": "padding filled with 0 instead of -inf", "question": "masked_softmax",
     "replace": ('scores.masked_fill(~mask, float("-inf"))', "scores.masked_fill(~mask, 0.0)"),
     "check": "gives padding exactly zero weight and equals the softmax over real positions",
     "says": "fill the masked scores with -inf"},
    {"name": "the mask read the wrong way round", "question": "masked_softmax",
     "replace": ('scores.masked_fill(~mask, float("-inf"))', 'scores.masked_fill(mask, float("-inf"))'),
     "check": "returns (T, B) weights that sum to 1 for every example", "says": "the wrong way round"},
    {"name": "the softmax over the batch axis", "question": "masked_softmax",
     "replace": ('float("-inf")), dim=0)', 'float("-inf")), dim=1)'),
     "check": "gives padding exactly zero weight and equals the softmax over real positions",
     "says": "the batch axis"},
    {"name": "the scores not scaled by sqrt(d)", "question": "dot_attention",
     "replace": ("scores = scores / math.sqrt(q.shape[-1])", "scores = scores"),
     "check": "equals F.scaled_dot_product_attention, padding masked", "says": "not divided by sqrt(d)"},
    {"name": "the tanh of the additive score forgotten", "question": "additive_score",
     "replace": ("return torch.tanh(q @ W_s.T + K @ U_h.T) @ v", "return (q @ W_s.T + K @ U_h.T) @ v"),
     "check": "equals v . tanh(W_s q + U_h k) at every position", "says": "the tanh is missing"},
    {"name": "PyTorch's attention called instead of the formula", "question": "dot_attention",
     "replace": ('    scores = torch.einsum("tbd,bd->tb", K, q)\n',
                 '    import torch.nn.functional as F\n'
                 '    F.scaled_dot_product_attention(q[:, None], K.transpose(0, 1), V.transpose(0, 1))\n'
                 '    scores = torch.einsum("tbd,bd->tb", K, q)\n'),
     "check": "equals F.scaled_dot_product_attention, padding masked", "says": "calls F.scaled_dot_product_attention"},
]
