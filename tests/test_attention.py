"""Unit tests for rnnbook.attention (chapter 16), with planted bugs each check must catch."""

import math

import pytest
import torch
import torch.nn.functional as F

import rnnbook.attention as attention
from rnnbook.attention import (EOS, PAD, START, VOCAB_SIZE, AttentionSeq2Seq, additive_score, attention_context,
                               beam_decode, beam_search, copied_exactly, copy_pairs, dot_score, exhaustive_search,
                               length_penalty, masked_softmax, scaled_dot_product_attention, train_copier)


def test_masked_softmax_gives_exactly_zero_to_masked_positions_and_sums_to_one():
    scores = torch.randn(6, 4, dtype=torch.float64)
    mask = torch.arange(6)[:, None] < torch.tensor([6, 3, 1, 5])
    weights = masked_softmax(scores, mask)
    assert torch.all(weights[~mask] == 0)
    torch.testing.assert_close(weights.sum(dim=0), torch.ones(4, dtype=torch.float64))
    junk = scores.masked_fill(~mask, 1e6)
    assert torch.equal(masked_softmax(junk, mask), weights)


def ignore_the_mask(scores, mask, dim=0):
    return torch.softmax(scores, dim=dim)  # planted bug: the mask ignored


def sdpa_inputs():
    """Queries (2, 3, 5, 8), keys (2, 3, 7, 8), values (2, 3, 7, 4) in float64, and a mask whose
    second batch keeps 4 of the 7 keys."""
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 5, 8, generator=generator, dtype=torch.float64)
    k = torch.randn(2, 3, 7, 8, generator=generator, dtype=torch.float64)
    v = torch.randn(2, 3, 7, 4, generator=generator, dtype=torch.float64)
    return q, k, v, torch.arange(7) < torch.tensor([7, 4])[:, None, None, None]


def sdpa_matches_pytorch():
    q, k, v, real = sdpa_inputs()
    ours, weights = scaled_dot_product_attention(q, k, v, real)
    unmasked, _ = scaled_dot_product_attention(q, k, v)
    return (bool((ours - F.scaled_dot_product_attention(q, k, v, attn_mask=real)).abs().max() < 1e-12)
            and bool(torch.all(weights.masked_select(~real.expand_as(weights)) == 0))
            and bool((unmasked - F.scaled_dot_product_attention(q, k, v)).abs().max() < 1e-12))


def test_planted_bug_a_softmax_that_ignores_the_mask_fails_the_pytorch_check(monkeypatch):
    assert sdpa_matches_pytorch()
    monkeypatch.setattr(attention, "masked_softmax", ignore_the_mask)
    assert not sdpa_matches_pytorch()


def test_planted_bug_scores_without_the_scaling_fail_the_pytorch_check(monkeypatch):
    monkeypatch.setattr(attention, "scaled_scores", lambda query, key: query @ key.transpose(-2, -1))
    assert not sdpa_matches_pytorch()


@pytest.mark.parametrize("bad_mask", [torch.ones(3, 2), torch.ones(2, 2, dtype=torch.bool),
                                      torch.tensor([[True, False], [True, False], [True, False]])])
def test_masked_softmax_rejects_bad_masks(bad_mask):
    with pytest.raises(ValueError):
        masked_softmax(torch.randn(3, 2), bad_mask)


def test_scaled_dot_product_attention_equals_pytorch_in_float64():
    q, k, v, real = sdpa_inputs()
    ours, weights = scaled_dot_product_attention(q, k, v, real)
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=real), rtol=0, atol=1e-12)
    assert torch.all(weights.masked_select(~real.expand_as(weights)) == 0)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v)[0], F.scaled_dot_product_attention(q, k, v),
                               rtol=0, atol=1e-12)


def test_scores_and_context_match_their_definitions():
    generator = torch.Generator().manual_seed(1)
    query, keys = torch.randn(3, 5, generator=generator), torch.randn(4, 3, 5, generator=generator)
    v = torch.randn(5, generator=generator)
    dot = dot_score(query, keys)
    additive = additive_score(query, keys, v)
    for t in range(4):
        for b in range(3):
            assert math.isclose(float(dot[t, b]), float(keys[t, b] @ query[b]), rel_tol=1e-5, abs_tol=1e-6)
            assert math.isclose(float(additive[t, b]), float(torch.tanh(keys[t, b] + query[b]) @ v),
                                rel_tol=1e-5, abs_tol=1e-6)
    weights = torch.softmax(torch.randn(4, 3, generator=generator), dim=0)
    context = attention_context(weights, keys)
    torch.testing.assert_close(context[1], sum(weights[t, 1] * keys[t, 1] for t in range(4)))
    with pytest.raises(ValueError):
        dot_score(query[:2], keys)


def test_copy_pairs_end_with_eos_then_padding_and_are_reproducible():
    sources, lengths, targets = copy_pairs(50, torch.Generator().manual_seed(2), 1, 9)
    again = copy_pairs(50, torch.Generator().manual_seed(2), 1, 9)
    assert torch.equal(sources, again[0]) and torch.equal(targets, again[2])
    for b in range(50):
        n = int(lengths[b])
        assert torch.equal(targets[:n, b], sources[:n, b]) and int(targets[n, b]) == EOS
        assert torch.all(sources[n:, b] == PAD) and torch.all(targets[n + 1:, b] == PAD)
        assert torch.all(sources[:n, b] >= 3)
    with pytest.raises(ValueError):
        copy_pairs(5, torch.Generator(), 4, 3)


def test_copied_exactly_ignores_what_follows_the_eos():
    targets = torch.tensor([[3, 4], [EOS, 5], [PAD, EOS]])
    tokens = torch.tensor([[3, 4], [EOS, 5], [7, 6]])
    assert copied_exactly(tokens, targets, torch.tensor([1, 2])).tolist() == [True, False]


def padded_batch_agrees_with_each_string_alone(kind):
    torch.manual_seed(3)
    model = AttentionSeq2Seq(kind, hidden_size=16, embedding_size=8).eval()
    sources, lengths, targets = copy_pairs(5, torch.Generator().manual_seed(4), 1, 7)
    with torch.no_grad():
        batch = model(sources, lengths, targets)
        worst = 0.0
        for b in range(5):
            n = int(lengths[b])
            alone = model(sources[:n, b:b + 1], lengths[b:b + 1], targets[:n + 1, b:b + 1])
            worst = max(worst, float((alone[:, 0] - batch[:n + 1, b]).abs().max()))
    return worst < 1e-5, model, sources, lengths, targets


@pytest.mark.parametrize("kind", ["additive", "dot", None])
def test_a_padded_batch_decodes_each_string_as_if_alone(kind):
    agree, model, sources, lengths, targets = padded_batch_agrees_with_each_string_alone(kind)
    assert agree
    with torch.no_grad():
        tokens, weights = model.greedy_decode(sources, lengths, targets.shape[0])
        assert torch.equal(model(sources, lengths, tokens).argmax(dim=-1), tokens)
    if kind is not None:
        assert torch.all(weights[:, torch.arange(sources.shape[0])[:, None] >= lengths] == 0)


@pytest.mark.parametrize("kind", ["additive", "dot"])
def test_planted_bug_a_model_softmax_that_ignores_the_mask_fails_the_padding_check(monkeypatch, kind):
    monkeypatch.setattr(attention, "masked_softmax", ignore_the_mask)
    assert not padded_batch_agrees_with_each_string_alone(kind)[0]


def test_training_batches_are_the_stream_train_copier_sees():
    batches = list(attention.training_batches(3, batch_size=4, seed=9))
    again = list(attention.training_batches(3, batch_size=4, seed=9))
    assert len(batches) == 3 and all(torch.equal(x[0], y[0]) for x, y in zip(batches, again))
    for _, lengths, _ in batches:
        assert int(lengths.max()) - int(lengths.min()) <= 5 and 1 <= int(lengths.min()) and int(lengths.max()) <= 20


def test_encoder_rejects_bad_sources_and_lengths():
    model = AttentionSeq2Seq("dot", hidden_size=4, embedding_size=3)
    sources, lengths, _ = copy_pairs(2, torch.Generator().manual_seed(0), 1, 5)
    with pytest.raises(ValueError, match=r"int64 source indices \(T, B\)"):
        model.encode(sources.float(), lengths)
    with pytest.raises(ValueError, match="1 lengths for a batch of 2"):
        model.encode(sources, lengths[:1])


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    model = AttentionSeq2Seq("dot", hidden_size=16, embedding_size=8)
    losses = train_copier(model, steps=40, batch_size=16, seed=0)
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10


def make_bigram():
    """Hand-set scores: ``a`` (0.66) is a likelier first token than ``b`` (0.23), but ``b$`` is the
    most probable output; with length normalisation at alpha = 0.6 the longer ``acd$`` wins. Every row
    that greedy decoding reads has one clear favourite, so greedy's ``acde$`` depends on no tie."""
    a, b, c, d, e = (3 + i for i in range(5))
    bigram = torch.full((VOCAB_SIZE, VOCAB_SIZE), 1 / VOCAB_SIZE)
    for previous, nexts in ((START, {a: 0.66, b: 0.23}), (a, {c: 0.99}), (c, {d: 0.99}), (d, {e: 0.33, EOS: 0.31}),
                            (e, {EOS: 0.8}), (b, {EOS: 0.99})):
        bigram[previous] = (1 - sum(nexts.values())) / (VOCAB_SIZE - len(nexts))
        for token, p in nexts.items():
            bigram[previous, token] = p
    table = bigram.log()
    return lambda previous, state: (table[previous], state)


def agrees(step, alpha, max_steps=4, beam_size=None, state=None):
    state = torch.zeros(1, 1) if state is None else state
    tokens, score = beam_search(step, state, beam_size or VOCAB_SIZE ** max_steps, max_steps, alpha)
    best, best_score = exhaustive_search(step, state, VOCAB_SIZE, max_steps, alpha)
    return torch.equal(tokens[:, 0], best) and abs(float(score[0]) - best_score) < 1e-5


def test_narrow_beams_find_exhaustive_search_s_best_on_hand_set_scores():
    step = make_bigram()
    short, _ = exhaustive_search(step, torch.zeros(1, 1), VOCAB_SIZE, 5, 0.0)
    long, _ = exhaustive_search(step, torch.zeros(1, 1), VOCAB_SIZE, 5, 0.6)
    assert short.tolist()[:2] == [4, EOS] and long.tolist()[:4] == [3, 5, 6, EOS]
    greedy, _ = beam_search(step, torch.zeros(1, 1), 1, 5, 0.0)
    assert greedy[:, 0].tolist() == [3, 5, 6, 7, EOS]  # greedy takes the likelier first token, writes acde$
    assert agrees(step, 0.0, 5, 4) and agrees(step, 0.6, 5, 4) and agrees(step, 0.6, 5, 2)


def test_a_wide_beam_equals_exhaustive_search_on_random_scores():
    generator = torch.Generator().manual_seed(5)
    table = torch.log_softmax(2 * torch.randn(VOCAB_SIZE, VOCAB_SIZE, generator=generator), dim=1)
    step = lambda previous, state: (table[previous], state)  # noqa: E731
    for alpha in (0.0, 0.6, 1.0):
        assert agrees(step, alpha, max_steps=3)


def model_scorer(source_seed):
    """A state-dependent scorer: a small untrained model whose EOS is made unlikely before step 3."""
    torch.manual_seed(5)
    model = AttentionSeq2Seq("additive", hidden_size=16, embedding_size=8).eval()
    sources, lengths, _ = copy_pairs(1, torch.Generator().manual_seed(source_seed), 1, 3)
    with torch.no_grad():
        memory, state = model.encode(sources, lengths)

    def step(previous, state):
        logits, hidden, _ = model.decode_step(previous, state[:, :-1],
                                              {k: m.expand(-1, len(previous), *m.shape[2:]) for k, m in memory.items()})
        log_probs = torch.log_softmax(logits, dim=-1)
        log_probs[:, EOS] -= 10.0 * (state[:, -1] < 2)
        return log_probs, torch.cat([hidden, state[:, -1:] + 1], dim=1)

    return step, torch.cat([state, torch.zeros(1, 1)], dim=1)


def test_beams_find_exhaustive_search_s_long_best_with_a_state_dependent_scorer():
    for source_seed in (8, 9, 10):
        step, state = model_scorer(source_seed)
        best, _ = exhaustive_search(step, state, VOCAB_SIZE, 3, 0.6)
        assert int(best[-1]) != EOS  # the best output is three symbols long
        assert agrees(step, 0.6, 3, state=state) and agrees(step, 0.6, 3, 4, state=state)


def test_planted_bug_states_not_reordered_by_parent_fail_the_exhaustive_check(monkeypatch):
    monkeypatch.setattr(attention, "reorder_states", lambda state, parent: state)
    failed = []
    for source_seed in (8, 9, 10):
        step, state = model_scorer(source_seed)
        failed.append(not agrees(step, 0.6, 3, 4, state=state))
    assert any(failed)


def test_planted_bug_pruning_by_raw_log_p_fails_the_narrow_beam_check(monkeypatch):
    monkeypatch.setattr(attention, "hypothesis_ranking", lambda log_p, length, alpha: log_p)
    assert not agrees(make_bigram(), 0.6, 5, 2)


def test_planted_bug_finished_hypotheses_that_run_on_fail_the_exhaustive_check(monkeypatch):
    monkeypatch.setattr(attention, "keep_finished", lambda log_probs, finished: log_probs)
    assert not agrees(make_bigram(), 0.0, 5, 4)


def test_planted_bug_no_length_normalisation_fails_the_exhaustive_check(monkeypatch):
    monkeypatch.setattr(attention, "length_penalty", lambda length, alpha: torch.ones_like(length))
    assert not agrees(make_bigram(), 0.6, 5, 4)


def test_length_penalty_is_wu_et_al():
    assert float(length_penalty(torch.tensor(1.0), 0.6)) == 1.0
    assert math.isclose(float(length_penalty(torch.tensor(4.0), 1.0)), 1.5)


def test_a_beam_of_one_is_greedy_decoding():
    torch.manual_seed(6)
    model = AttentionSeq2Seq("additive", hidden_size=16, embedding_size=8).eval()
    sources, lengths, _ = copy_pairs(16, torch.Generator().manual_seed(7), 1, 8)
    beam, _ = beam_decode(model, sources, lengths, 1, 9)
    greedy, _ = model.greedy_decode(sources, lengths, 9)
    greedy = torch.where(torch.cumsum(greedy == EOS, dim=0) > 0, EOS, greedy)
    assert torch.equal(beam, greedy)


def batch_equals_alone(beam_size=4, steps=9):
    """Beam search over eight sources at once against each source searched alone."""
    torch.manual_seed(11)
    model = AttentionSeq2Seq("additive", hidden_size=16, embedding_size=8).eval()
    sources, lengths, _ = copy_pairs(8, torch.Generator().manual_seed(12), 1, 8)
    together, _ = beam_decode(model, sources, lengths, beam_size, steps)
    return [torch.equal(together[:, b], beam_decode(model, sources[:int(lengths[b]), b:b + 1], lengths[b:b + 1],
                                                    beam_size, steps)[0][:, 0]) for b in range(8)]


def test_a_batched_beam_equals_each_source_searched_alone():
    assert all(batch_equals_alone())


def test_planted_bug_memory_repeated_as_a_block_fails_the_batch_check(monkeypatch):
    monkeypatch.setattr(attention, "expand_memory", lambda memory, beam_size: {
        name: tensor.repeat(1, beam_size, *[1] * (tensor.ndim - 2)) for name, tensor in memory.items()})
    assert not all(batch_equals_alone())


def test_planted_bug_sources_reversed_in_reorder_states_fails_the_batch_check(monkeypatch):
    correct = attention.reorder_states
    monkeypatch.setattr(attention, "reorder_states", lambda state, parent: correct(
        state.view(*parent.shape, -1).flip(0).reshape(state.shape), parent))
    assert not all(batch_equals_alone())


def test_beam_search_rejects_bad_sizes():
    with pytest.raises(ValueError):
        beam_search(make_bigram(), torch.zeros(1, 1), 0, 3)
