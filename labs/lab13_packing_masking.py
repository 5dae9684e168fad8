# %% [markdown]
# # Lab 13 · Padding, masking and packing
#
# Companion to chapter 13, *Variable-length sequences*. A batch of sequences of
# different lengths is padded into a rectangle `(T, B, I)` and described by its
# `lengths` `(B,)`. You write the helpers that keep the padding from changing anything:
# a mask of the real steps, a loss that ignores the padding, PyTorch's packed layout
# built by hand, and each sequence's last real output. The grader compares them with
# `torch.nn.utils.rnn` and with per-sequence computations, and fills the padding with
# junk to see whether it leaks into your results.

# %% [given]
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

# Three sequences of lengths 5, 2 and 4 with three features per step, padded with zeros.
torch.manual_seed(0)
sequences = [torch.randn(length, 3) for length in (5, 2, 4)]
padded = pad_sequence(sequences)  # (T, B, I) = (5, 3, 3)
lengths = torch.tensor([5, 2, 4])

# %% [markdown]
# ## Question 1: the mask of real steps (3 points)
#
# `length_mask(lengths, max_length)` is a `(T, B)` boolean tensor, `True` at step `t` of
# sequence `b` exactly when `t < lengths[b]`; `T` is `max_length`, or the largest length
# when `max_length` is `None`. Refuse a length below 1 or above `max_length` with a
# `ValueError` that names the bad length. (One comparison of `torch.arange(T)` with
# `lengths` builds the whole mask; no loop is needed.)

# %% [answer] length_mask
def length_mask(lengths, max_length=None):
    """(T, B) bool mask of the real steps: mask[t, b] = t < lengths[b].

    lengths: (B,) integer tensor. T = max_length, or max(lengths) if None.
    Raises ValueError if a length is < 1 or > max_length.
    """
    # TODO: check the lengths (ValueError), then compare torch.arange(T)[:, None] with lengths[None, :]
    ### BEGIN SOLUTION
    lengths = torch.as_tensor(lengths)
    if int(lengths.min()) < 1:
        raise ValueError(f"every length must be at least 1, got {lengths.tolist()}")
    if max_length is not None and int(lengths.max()) > max_length:
        raise ValueError(f"a length of {int(lengths.max())} does not fit in max_length = {max_length} steps")
    steps = int(lengths.max()) if max_length is None else max_length
    return torch.arange(steps)[:, None] < lengths[None, :]
    ### END SOLUTION

# %% [code]
grader.check("length_mask")

# %% [markdown]
# ## Question 2: a loss that ignores the padding (4 points)
#
# A tagger predicts a class at every step: `logits` `(T, B, C)`, `targets` `(T, B)`.
# The loss is the cross-entropy averaged over the **real** steps only: the padding's
# logits and targets must not change it or its gradient, and a padding target may hold
# any integer (for example -1), which `F.cross_entropy` would refuse.

# %% [answer] masked_cross_entropy
def masked_cross_entropy(logits, targets, lengths):
    """Mean cross-entropy over the real steps of a padded batch.

    logits (T, B, C), targets (T, B) int64, lengths (B,). Returns a scalar tensor.
    """
    # TODO: per-step losses with F.cross_entropy(..., reduction="none") on safe targets, then their mean over the mask
    ### BEGIN SOLUTION
    T, B, C = logits.shape
    mask = length_mask(lengths, T)
    safe_targets = torch.where(mask, targets, torch.zeros_like(targets))
    per_step = F.cross_entropy(logits.reshape(-1, C), safe_targets.reshape(-1), reduction="none").view(T, B)
    return per_step[mask].mean()
    ### END SOLUTION

# %% [code]
grader.check("masked_cross_entropy")

# %% [markdown]
# ## Question 3: packing by hand (5 points)
#
# `pack_padded_sequence(padded, lengths, enforce_sorted=False)` stores only the real
# steps. It sorts the sequences by decreasing length (`sorted_indices`), then lists
# time step 0 of every sequence, step 1 of every sequence still running, and so on:
# `batch_sizes[t]` is the number of sequences longer than `t`, and `data` stacks those
# rows, `(sum of lengths, I)`. Rebuild the three tensors yourself; the grader feeds them
# to an `nn.GRU` as a `PackedSequence`.

# %% [answer] pack
def pack(padded, lengths):
    """The packed layout of a time-major padded batch.

    padded (T, B, I), lengths (B,). Returns (data (sum(lengths), I), batch_sizes (T',) int64,
    sorted_indices (B,) int64), where T' = max(lengths), as pack_padded_sequence(...,
    enforce_sorted=False) computes them.
    """
    # TODO: sort by decreasing length, count the running sequences at each step, gather their rows
    ### BEGIN SOLUTION
    lengths = torch.as_tensor(lengths)
    _, sorted_indices = torch.sort(lengths, descending=True)
    steps = int(lengths.max())
    batch_sizes = torch.stack([(lengths > t).sum() for t in range(steps)])
    data = torch.cat([padded[t, sorted_indices[:int(batch_sizes[t])]] for t in range(steps)])
    return data, batch_sizes, sorted_indices
    ### END SOLUTION

# %% [code]
grader.check("pack")

# %% [markdown]
# ## Question 4: each sequence's last real output (3 points)
#
# After a run over the padded batch (or `pad_packed_sequence`), `outputs` is `(T, B, F)`.
# A classifier wants each sequence's output at its own last real step,
# `outputs[lengths[b] - 1, b]`, not `outputs[-1]`, which is padding for every shorter
# sequence. Refuse a length below 1 or above `T` with a `ValueError`: a length of 0
# would silently index step -1, the last padded step.

# %% [answer] last_step
def last_step(outputs, lengths):
    """outputs[lengths[b] - 1, b] for every b: (B, F).

    outputs (T, B, F), lengths (B,). Raises ValueError if a length is < 1 or > T.
    """
    # TODO: check the lengths (ValueError), then index the time axis with lengths - 1 and the batch axis with torch.arange(B)
    ### BEGIN SOLUTION
    lengths = torch.as_tensor(lengths)
    if int(lengths.min()) < 1 or int(lengths.max()) > outputs.shape[0]:
        raise ValueError(f"lengths must lie between 1 and T = {outputs.shape[0]}, got {lengths.tolist()}")
    return outputs[lengths - 1, torch.arange(outputs.shape[1])]
    ### END SOLUTION

# %% [code]
grader.check("last_step")

# %% [markdown]
# ## Every check again
#
# After Restart and Run All, read this cell's output before you hand the notebook in: the
# teacher's grader runs the same checks, and counts what each question's `grader.check` cell shows.

# %% [code]
grader.check_all()

# %% [checks]
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence as _pack_padded, pad_sequence as _pad

LENGTHS = torch.tensor([3, 5, 1, 4])  # distinct, not sorted

import torch.nn.utils.rnn as _rnn_utils

for _owner, _name, _label in [(_rnn_utils, "pack_padded_sequence", "pack_padded_sequence"),
                               (_rnn_utils, "pack_sequence", "pack_sequence"),
                               (torch, "_pack_padded_sequence", "torch._pack_padded_sequence")]:
    forbid(_owner, _name, _label)

CHECK_I, CLASSES = 2, 3


def batch(padding_value=0.0):
    generator = torch.Generator().manual_seed(130)
    seqs = [torch.randn(int(n), CHECK_I, generator=generator, dtype=torch.float64) for n in LENGTHS]
    return _pad(seqs, padding_value=padding_value), seqs


@check_of("length_mask", 2, "True exactly at the real steps, with and without max_length")
def _(ns):
    for max_length in (None, 7):
        mask = call(ns, "length_mask", LENGTHS, max_length)
        steps = 5 if max_length is None else max_length
        expect_tensor(mask, (steps, len(LENGTHS)), f"length_mask(lengths, max_length={max_length})")
        if mask.dtype != torch.bool:
            raise CheckFailed(f"the mask should be a bool tensor (it selects entries), got {mask.dtype}")
        expected = torch.tensor([[t < int(n) for n in LENGTHS] for t in range(steps)])
        if not torch.equal(mask, expected):
            if torch.equal(mask, torch.tensor([[t <= int(n) for n in LENGTHS] for t in range(steps)])):
                raise CheckFailed("the mask includes step t = lengths[b], one past the end: use t < lengths[b]")
            if mask.shape == expected.T.shape or torch.equal(mask.T, expected.T):
                raise CheckFailed("the mask is (B, T): make it time-major, (T, B)")
            bad = (mask != expected).nonzero()[0].tolist()
            raise CheckFailed(f"with max_length={max_length}, mask[{bad[0]}, {bad[1]}] should be "
                              f"{bool(expected[bad[0], bad[1]])} (sequence {bad[1]} has {int(LENGTHS[bad[1]])} steps)")


@check_of("length_mask", 1, "refuses lengths below 1 or above max_length with a ValueError")
def _(ns):
    function = ns.get("length_mask")
    if not callable(function):
        raise CheckFailed("length_mask is not defined: run its cell first")
    expect_error(ValueError, function, torch.tensor([3, 0, 2]), what="a sequence of length 0")
    expect_error(ValueError, function, torch.tensor([3, 6, 2]), 5, what="a length of 6 with max_length = 5")


def tagger_problem(padding_scale=0.0, padding_target=0):
    """Logits (T, B, C) and targets (T, B); the padding's logits are padding_scale times random numbers."""
    generator = torch.Generator().manual_seed(131)
    T, B = int(LENGTHS.max()), len(LENGTHS)
    logits = torch.randn(T, B, CLASSES, generator=generator, dtype=torch.float64)
    targets = torch.randint(CLASSES, (T, B), generator=generator)
    padding = torch.arange(T)[:, None] >= LENGTHS[None, :]
    logits[padding] = padding_scale * torch.randn(int(padding.sum()), CLASSES, generator=generator, dtype=torch.float64)
    targets[padding] = padding_target
    return logits, targets


def loss_of(ns, logits, targets):
    loss = call(ns, "masked_cross_entropy", logits, targets, LENGTHS)
    if not (isinstance(loss, torch.Tensor) and loss.numel() == 1):
        raise CheckFailed(f"masked_cross_entropy should return a scalar tensor, got {getattr(loss, 'shape', loss)}")
    return loss.reshape(())


@check_of("masked_cross_entropy", 2, "equals the mean over the real steps")
def _(ns):
    logits, targets = tagger_problem()
    got = loss_of(ns, logits, targets)
    per_sequence = [F.cross_entropy(logits[:n, b], targets[:n, b], reduction="sum") for b, n in enumerate(LENGTHS)]
    expected = sum(per_sequence) / LENGTHS.sum()
    unmasked = F.cross_entropy(logits.reshape(-1, CLASSES), targets.reshape(-1))
    per_sequence_mean = torch.stack([F.cross_entropy(logits[:n, b], targets[:n, b]) for b, n in enumerate(LENGTHS)]).mean()
    diagnose(got, expected, {
        "the padding steps count in your mean: average over the real steps only (select them with the mask)": unmasked,
        "you averaged each sequence, then the sequences: average over all real steps at once, so every step "
        "weighs the same": per_sequence_mean,
    }, "the loss differs from the mean cross-entropy over the real steps")


@check_of("masked_cross_entropy", 1, "ignores what the padding holds (logits in the hundreds, targets of -1)")
def _(ns):
    clean = loss_of(ns, *tagger_problem())
    junk = loss_of(ns, *tagger_problem(padding_scale=300.0, padding_target=-1))
    if not torch.isfinite(junk) or largest_difference(clean, junk) > 1e-9:
        raise CheckFailed(f"with junk in the padding the loss changed from {float(clean):.4f} to {float(junk):.4f}: "
                          "mask the padding steps out of the loss")


@check_of("masked_cross_entropy", 1, "sends no gradient to the padding")
def _(ns):
    logits, targets = tagger_problem()
    logits.requires_grad_()
    loss = loss_of(ns, logits, targets)
    if not loss.requires_grad:
        raise CheckFailed("the loss does not depend on the logits for autograd: avoid .item(), .detach() and .data")
    (grad,) = torch.autograd.grad(loss, logits)
    padding = torch.arange(logits.shape[0])[:, None] >= LENGTHS[None, :]
    if float(grad[padding].abs().max()) > 0:
        raise CheckFailed("the padding's logits receive a gradient: the loss must not depend on them")


def student_pack(ns, padded_batch):
    result = call(ns, "pack", padded_batch, LENGTHS)
    if not (isinstance(result, tuple) and len(result) == 3):
        raise CheckFailed("pack should return (data, batch_sizes, sorted_indices)")
    data, batch_sizes, sorted_indices = result
    expect_tensor(data, (int(LENGTHS.sum()), CHECK_I), "data")
    expect_tensor(batch_sizes, (int(LENGTHS.max()),), "batch_sizes")
    expect_tensor(sorted_indices, (len(LENGTHS),), "sorted_indices")
    return data, batch_sizes, sorted_indices


@check_of("pack", 3, "equals pack_padded_sequence(..., enforce_sorted=False)")
def _(ns):
    padded_batch, _ = batch()
    data, batch_sizes, sorted_indices = student_pack(ns, padded_batch)
    theirs = _pack_padded(padded_batch, LENGTHS, enforce_sorted=False)
    if not torch.equal(batch_sizes.long(), theirs.batch_sizes):
        raise CheckFailed(f"batch_sizes is {batch_sizes.tolist()}, pack_padded_sequence's is "
                          f"{theirs.batch_sizes.tolist()}: batch_sizes[t] counts the sequences longer than t")
    if not torch.equal(sorted_indices.long(), theirs.sorted_indices):
        raise CheckFailed(f"sorted_indices is {sorted_indices.tolist()}, pack_padded_sequence's is "
                          f"{theirs.sorted_indices.tolist()}: sort the sequences by decreasing length "
                          "(torch.sort(lengths, descending=True))")
    diagnose(data, theirs.data, {}, "data differs from pack_padded_sequence's: at each step t, take the rows "
             "padded[t, sorted_indices[:batch_sizes[t]]]")


@check_of("pack", 2, "an nn.GRU reads your packed batch as PyTorch's")
def _(ns):
    padded_batch, seqs = batch(padding_value=1000.0)
    data, batch_sizes, sorted_indices = student_pack(ns, padded_batch)
    if not torch.equal(torch.sort(sorted_indices.long())[0], torch.arange(len(LENGTHS))):
        raise CheckFailed(f"sorted_indices {sorted_indices.tolist()} is not a permutation of the batch")
    packed = PackedSequence(data, batch_sizes.long().cpu(), sorted_indices.long(), torch.argsort(sorted_indices.long()))
    torch.manual_seed(132)
    gru = nn.GRU(CHECK_I, 2).double()
    _, h_n = gru(packed)
    for b, sequence in enumerate(seqs):
        _, alone = gru(sequence[:, None])
        if largest_difference(h_n[0, b], alone[0, 0]) > 1e-9:
            raise CheckFailed(f"the GRU's final state for sequence {b} ({int(LENGTHS[b])} steps) differs from "
                              "reading that sequence alone: your packed batch mixes up steps or sequences "
                              "(or includes padding)")


@check_of("last_step", 2, "picks outputs[lengths[b] - 1, b]")
def _(ns):
    generator = torch.Generator().manual_seed(133)
    outputs = torch.randn(int(LENGTHS.max()) + 2, len(LENGTHS), 3, generator=generator)  # two extra padding steps
    got = call(ns, "last_step", outputs, LENGTHS)
    expect_tensor(got, (len(LENGTHS), 3), "last_step(outputs (T, B, F), lengths)")
    expected = torch.stack([outputs[int(n) - 1, b] for b, n in enumerate(LENGTHS)])
    diagnose(got, expected, {
        "you took the last padded step, outputs[-1]; index each sequence by lengths[b] - 1": outputs[-1],
        "index by lengths[b] - 1: step lengths[b] is already padding": torch.stack(
            [outputs[int(n), b] for b, n in enumerate(LENGTHS)]),
    }, "last_step differs from each sequence's output at its last real step")


@check_of("last_step", 1, "refuses lengths below 1 or above T with a ValueError")
def _(ns):
    outputs = torch.zeros(5, 3, 2)
    function = ns.get("last_step")
    if not callable(function):
        raise CheckFailed("last_step is not defined: run its cell first")
    expect_error(ValueError, function, outputs, torch.tensor([5, 0, 2]),
                 what="a length of 0 (outputs[-1] would be read without a word)")
    expect_error(ValueError, function, outputs, torch.tensor([6, 1, 2]), what="a length of 6 for T = 5 steps")

# %% [mistakes]
MISTAKES = [
    {"name": "packing without sorting by length", "question": "pack",
     "replace": ("_, sorted_indices = torch.sort(lengths, descending=True)",
                 "sorted_indices = torch.arange(len(lengths))"),
     "check": "equals pack_padded_sequence(..., enforce_sorted=False)", "says": "sort the sequences by decreasing"},
    {"name": "the padding not masked in the loss", "question": "masked_cross_entropy",
     "replace": ("return per_step[mask].mean()", "return per_step.mean()"),
     "check": "equals the mean over the real steps", "says": "the padding steps count in your mean"},
    {"name": "the last padded step instead of the last real one", "question": "last_step",
     "replace": ("return outputs[lengths - 1, torch.arange(outputs.shape[1])]", "return outputs[-1]"),
     "check": "picks outputs[lengths[b] - 1, b]", "says": "outputs[-1]"},
    {"name": "pack_padded_sequence called instead of packing by hand", "question": "pack",
     "replace": ("_, sorted_indices = torch.sort(lengths, descending=True)",
                 "packed = pack_padded_sequence(padded, lengths, enforce_sorted=False)\n"
                 "    return packed.data, packed.batch_sizes, packed.sorted_indices"),
     "check": "equals pack_padded_sequence(..., enforce_sorted=False)", "says": "calls pack_padded_sequence"},
]
