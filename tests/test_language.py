"""rnnbook.language (exported from chapter 1): vocabulary, corpus, perplexity, n-grams."""

import collections
import math

import numpy as np
import pytest
import torch

from rnnbook.language import (KneserNeyModel, NGramModel, Vocab, baseline_perplexities, kneser_ney_name,
                              kneser_ney_perplexities, load_corpus, ngram_perplexities, perplexity, preprocess,
                              split_corpus, split_train_val_test)


def test_preprocess_keeps_letters_and_single_spaces():
    assert preprocess("The Time-Machine, 1895!\n\nChapter I") == "the time machine chapter i"
    assert preprocess("") == ""


def test_vocab_orders_like_d2l_and_maps_unknowns():
    vocab = Vocab("hello world")
    assert vocab.idx_to_token == [" ", "<unk>", "d", "e", "h", "l", "o", "r", "w"]
    assert vocab.encode("low") == [5, 6, 8]
    assert vocab.encode("lo!") == [5, 6, vocab.unk]
    assert vocab.decode(vocab.encode("hello")) == "hello"
    assert vocab.decode(torch.tensor([4, 3])) == "he"


def test_vocab_refuses_bad_input():
    with pytest.raises(ValueError, match="at least one token"):
        Vocab("")
    with pytest.raises(IndexError, match="outside a vocabulary of size 9"):
        Vocab("hello world").decode([9])


def test_load_corpus_from_text():
    corpus, vocab = load_corpus("Ab, ab!")
    assert vocab.decode(corpus) == "ab ab "
    assert corpus.dtype == torch.long and corpus.shape == (6,)


def test_load_corpus_from_the_book():
    corpus, vocab = load_corpus()
    assert len(vocab) == 28 and corpus.shape == (173_428,)


def test_split_is_contiguous_and_complete():
    corpus = torch.arange(100)
    train, val = split_corpus(corpus, 0.1)
    assert torch.equal(torch.cat([train, val]), corpus) and len(val) == 10


def test_three_way_split_keeps_the_training_text_and_halves_the_rest():
    corpus = torch.arange(101)
    train, val, test = split_train_val_test(corpus, 0.2)
    assert torch.equal(train, split_corpus(corpus, 0.2)[0])
    assert torch.equal(torch.cat([train, val, test]), corpus)
    assert (len(val), len(test)) == (10, 11)
    with pytest.raises(ValueError, match="cannot be cut"):
        split_train_val_test(torch.arange(10), 0.1)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_refuses_bad_fractions(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        split_corpus(torch.arange(10), fraction)


def test_split_refuses_bad_shapes_and_tiny_corpora():
    with pytest.raises(ValueError, match="1-D"):
        split_corpus(torch.zeros(4, 4), 0.5)
    with pytest.raises(ValueError, match="too short"):
        split_corpus(torch.arange(1), 0.5)


def test_perplexity_of_known_models():
    assert math.isclose(perplexity(torch.full((50,), math.log(0.25), dtype=torch.float64)), 4.0)
    assert perplexity([0.0, 0.0]) == 1.0
    # exp of the mean of -log p, not the mean of 1/p
    assert math.isclose(perplexity([math.log(0.5), math.log(0.125)]), 4.0)


@pytest.mark.parametrize("bad", [[], [[-1.0]], [0.3], [float("nan")]])
def test_perplexity_refuses_what_is_not_log_probabilities(bad):
    with pytest.raises(ValueError):
        perplexity(bad)


def brute_force_probability(tokens, n, alpha, vocab_size, context, nxt):
    """P(nxt | context) by counting in plain Python."""
    grams = collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    contexts = collections.Counter(gram[:-1] for gram in grams.elements())
    return (grams[tuple(context) + (nxt,)] + alpha) / (contexts[tuple(context)] + alpha * vocab_size)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_ngram_matches_brute_force_counting(n, seed):
    rng = np.random.default_rng(seed)
    vocab_size, alpha = 5, 0.3
    tokens = rng.integers(0, vocab_size, size=300).tolist()
    model = NGramModel(n, vocab_size, alpha).fit(tokens)
    held_out = rng.integers(0, vocab_size, size=40).tolist()
    sequence = tokens + held_out
    expected = [math.log(brute_force_probability(tokens, n, alpha, vocab_size, sequence[t - n + 1:t], sequence[t]))
                for t in range(len(tokens), len(sequence))]
    np.testing.assert_allclose(model.log_probs(sequence, start=len(tokens)), expected, rtol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_context_counts_match_brute_force_counting(n):
    tokens = np.random.default_rng(n).integers(0, 4, size=200).tolist()
    model = NGramModel(n, 4).fit(tokens)
    held_out = [0, 1, 2, 3, 3, 3, 0]
    sequence = tokens + held_out
    contexts = collections.Counter(tuple(tokens[i:i + n - 1]) for i in range(len(tokens) - n + 1))
    expected = [contexts[tuple(sequence[t - n + 1:t])] for t in range(len(tokens), len(sequence))]
    assert model.context_counts(sequence, start=len(tokens)).tolist() == expected
    with pytest.raises(ValueError, match="start must leave"):
        model.context_counts(sequence, start=len(sequence))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_ngram_distributions_are_normalised_and_unseen_contexts_uniform(n):
    model = NGramModel(n, 4, alpha=0.5).fit([0, 1, 2, 0, 1, 2, 0, 1])
    for context in ([0, 1], [2, 0], [1, 2]):
        assert math.isclose(model.next_distribution(context).sum(), 1.0)
    if n > 1:
        np.testing.assert_allclose(model.next_distribution([3, 3]), np.full(4, 0.25))


def test_ngram_sampling_is_reproducible_and_in_range():
    model = NGramModel(3, 6, 0.1).fit(np.random.default_rng(0).integers(0, 6, 500))
    first = model.sample([1, 2], 50, np.random.default_rng(3))
    again = model.sample([1, 2], 50, np.random.default_rng(3))
    assert np.array_equal(first, again) and first.shape == (50,)
    assert first.min() >= 0 and first.max() < 6


def test_ngram_refuses_bad_input():
    with pytest.raises(ValueError, match="positive int"):
        NGramModel(0, 5)
    with pytest.raises(ValueError, match="alpha"):
        NGramModel(2, 5, alpha=0.0)
    with pytest.raises(ValueError, match="too large"):
        NGramModel(20, 28)
    model = NGramModel(2, 5)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        model.fit([0, 1, 7])
    with pytest.raises(ValueError, match="1-D"):
        model.fit([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="at least n=2"):
        model.fit([3])
    model.fit([0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="start must leave"):
        model.log_probs([0, 1, 2], start=0)
    with pytest.raises(ValueError, match="context"):
        NGramModel(3, 5).fit([0, 1, 2, 3]).next_distribution([1])


def test_ngram_perplexities_covers_the_grid():
    corpus = torch.tensor(np.random.default_rng(0).integers(0, 4, 400))
    grid = ngram_perplexities(corpus[:300], corpus, 4, orders=[1, 2], alphas=[1.0, 0.1])
    assert set(grid) == {(1, 1.0), (1, 0.1), (2, 1.0), (2, 0.1)}
    # Random tokens carry no order: every model sits near the uniform perplexity, 4.
    assert all(3.5 < val < 4.5 for _, val in grid.values())


def test_baseline_perplexities_names_and_orders_the_yardstick():
    rng = np.random.default_rng(1)
    pattern = torch.tensor(rng.integers(0, 6, 50)).repeat(20)  # a text with strong order
    baselines = baseline_perplexities(pattern[:900], pattern, 6, orders=[1, 2, 3], alphas=[1.0, 0.1])
    names = list(baselines)
    assert names[:3] == ["uniform", "unigram", "bigram"] and names[3].endswith("-gram (alpha=0.1)")
    assert math.isclose(baselines["uniform"], 6.0)
    assert baselines[names[3]] < baselines["bigram"] < baselines["uniform"]


def test_ngram_distributions_match_log_probs_and_next_distribution():
    rng = np.random.default_rng(4)
    tokens = rng.integers(0, 5, 300)
    model = NGramModel(3, 5, alpha=0.2).fit(tokens[:250])
    dists = model.distributions(tokens, start=250)
    assert dists.shape == (50, 5)
    np.testing.assert_allclose(np.log(dists[np.arange(50), tokens[250:]]), model.log_probs(tokens, start=250), rtol=1e-12)
    np.testing.assert_allclose(dists[7], model.next_distribution(tokens[:257]), rtol=1e-12)


# Kneser-Ney, written a second time the slow way: dictionaries and the textbook recursion.
def brute_force_kneser_ney(tokens, n, vocab_size, discounts_of=None, discount=0.75):
    """P(w | context) for every context of n-1 tokens, by the recursion of Chen and Goodman (1999).

    ``discounts_of(k, counts)`` returns (D1, D2, D3+) for order k, given its counts; the
    default is ``discount`` for every count."""
    tokens = tuple(tokens)
    counts = {n: collections.Counter(tokens[i:i + n] for i in range(len(tokens) - n + 1))}
    for k in range(n - 1, 0, -1):  # continuation counts: distinct tokens before each k-gram
        counts[k] = collections.Counter(gram[1:] for gram in counts[k + 1])
    discounts = {k: (discounts_of(k, counts[k]) if discounts_of else (discount,) * 3) for k in counts}

    def probability(context, w):
        p = 1.0 / vocab_size
        for k in range(1, n + 1):
            h = tuple(context[len(context) - (k - 1):]) if k > 1 else ()
            followers = {gram[-1]: c for gram, c in counts[k].items() if gram[:-1] == h}
            total = sum(followers.values())
            if total == 0:
                continue
            d = discounts[k]
            take = lambda c: d[min(c, 3) - 1]
            p = (followers.get(w, 0) - (take(followers[w]) if w in followers else 0)
                 + sum(take(c) for c in followers.values()) * p) / total
        return p

    return probability


def chen_goodman(k, counts):
    n = [sum(c == r for c in counts.values()) for r in (1, 2, 3, 4)]
    if min(n) == 0:
        return (0.75,) * 3
    y = n[0] / (n[0] + 2 * n[1])
    estimates = tuple(r - (r + 1) * y * n[r] / n[r - 1] for r in (1, 2, 3))
    return estimates if all(0 < d <= r for r, d in enumerate(estimates, 1)) else (0.75,) * 3


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("modified", [False, True])
def test_kneser_ney_matches_the_textbook_recursion(n, modified):
    rng = np.random.default_rng(n)
    vocab_size = 6
    tokens = rng.integers(0, 5, 400).tolist()  # token 5 never occurs in training
    model = KneserNeyModel(n, vocab_size, discount=0.75 if modified else 0.6, modified=modified).fit(tokens)
    reference = brute_force_kneser_ney(tokens, n, vocab_size, chen_goodman if modified else None, discount=0.6)
    held_out = rng.integers(0, vocab_size, 40).tolist()  # contexts with a 5 were never seen
    assert 5 in held_out[:-1]
    sequence = tokens + held_out
    expected = [math.log(reference(sequence[t - n + 1:t], sequence[t])) for t in range(len(tokens), len(sequence))]
    np.testing.assert_allclose(model.log_probs(sequence, start=len(tokens)), expected, rtol=1e-12)


def test_modified_discounts_follow_chen_and_goodman():
    tokens = np.random.default_rng(0).integers(0, 6, 3000)
    model = KneserNeyModel(4, 6, modified=True).fit(tokens)
    top = collections.Counter(tuple(tokens[i:i + 4]) for i in range(len(tokens) - 3))
    n1, n2, n3, n4 = (sum(c == r for c in top.values()) for r in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2)
    np.testing.assert_allclose(model.discounts[-1], [1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3])
    assert model.discounts[0] == (0.75, 0.75, 0.75)  # unigram continuation counts: estimate undefined or out of range


def test_kneser_ney_by_hand_on_abracadabra():
    a, b, c, d, r = range(5)
    tokens = [a, b, r, a, c, a, d, a, b, r, a]
    model = KneserNeyModel(2, 6, discount=0.5).fit(tokens)
    # Continuation counts: 7 distinct pairs ab br ra ac ca ad da; 'a' follows r, c, d; 5 distinct second tokens.
    p1 = lambda followers: (followers - 0.5) / 7 + 0.5 * 5 / 7 / 6 if followers else 0.5 * 5 / 7 / 6
    # The context 'r' occurs twice, followed by 'a' both times.
    expected = [(2 - 0.5) / 2 + 0.5 * 1 / 2 * p1(3), 0.5 / 2 * p1(1), 0.5 / 2 * p1(1), 0.5 / 2 * p1(1),
                0.5 / 2 * p1(1), 0.5 / 2 * p1(0)]
    np.testing.assert_allclose(model.next_distribution([r]), expected, rtol=1e-12)
    # A context never seen ('e', index 5) falls back on the unigram continuation distribution.
    np.testing.assert_allclose(model.next_distribution([5]), [p1(3), p1(1), p1(1), p1(1), p1(1), p1(0)], rtol=1e-12)


@pytest.mark.parametrize("modified", [False, True])
def test_kneser_ney_distributions_sum_to_one_after_every_context(modified):
    rng = np.random.default_rng(2)
    vocab_size, n = 4, 3
    model = KneserNeyModel(n, vocab_size, discount=1.0, modified=modified).fit(rng.integers(0, 3, 500))  # token 3 unseen
    contexts = np.array([[i, j] for i in range(vocab_size) for j in range(vocab_size)])  # all 16, seen or not
    dists = np.stack([model.next_distribution(context) for context in contexts])
    np.testing.assert_allclose(dists.sum(axis=1), 1.0, rtol=1e-12)
    assert (dists > 0).all()  # even the never-seen token keeps some probability


def test_kneser_ney_refuses_bad_discounts_and_names_models():
    for discount in (0.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="discount"):
            KneserNeyModel(3, 5, discount=discount)
    assert kneser_ney_name(7, "modified") == "Kneser-Ney 7-gram (modified)"
    assert kneser_ney_name(6, 0.9) == "Kneser-Ney 6-gram (D=0.9)"


def test_kneser_ney_grid_and_the_yardstick_with_it():
    rng = np.random.default_rng(1)
    pattern = torch.tensor(rng.integers(0, 6, 50)).repeat(20)
    grid = kneser_ney_perplexities(pattern[:900], pattern, 6, orders=[2, 3], discounts=[0.5, "modified"])
    assert set(grid) == {(2, 0.5), (2, "modified"), (3, 0.5), (3, "modified")}
    baselines = baseline_perplexities(pattern[:900], pattern, 6, orders=[1, 2, 3], alphas=[1.0, 0.1],
                                      kneser_ney=True, kn_orders=[2, 3], kn_discounts=[0.5, "modified"])
    best = min(grid, key=grid.get)
    assert list(baselines)[-1] == kneser_ney_name(*best) and baselines[kneser_ney_name(*best)] == grid[best]
    assert len(baseline_perplexities(pattern[:900], pattern, 6, orders=[1, 2], alphas=[1.0])) == 4  # unchanged default


def test_modified_kneser_ney_with_estimated_discounts_matches_the_recursion():
    rng = np.random.default_rng(7)
    tokens = rng.integers(0, 10, 3000).tolist()
    model = KneserNeyModel(4, 11, modified=True).fit(tokens)
    assert all(discounts != (0.75,) * 3 for discounts in model.discounts[2:])  # estimated at orders 3 and 4
    reference = brute_force_kneser_ney(tokens, 4, 11, chen_goodman)
    held_out = rng.integers(0, 11, 40).tolist()
    sequence = tokens + held_out
    expected = [math.log(reference(sequence[t - 3:t], sequence[t])) for t in range(len(tokens), len(sequence))]
    np.testing.assert_allclose(model.log_probs(sequence, start=len(tokens)), expected, rtol=1e-12)
