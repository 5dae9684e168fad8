"""rnnbook.language (exported from chapter 1): vocabulary, corpus, perplexity, n-grams."""

import collections
import math

import numpy as np
import pytest
import torch

from rnnbook.language import (NGramModel, Vocab, baseline_perplexities, load_corpus, ngram_perplexities, perplexity,
                              preprocess, split_corpus)


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
