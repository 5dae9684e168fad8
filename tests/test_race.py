"""rnnbook.race (exported from chapter 18): regularised character LSTM, scorers, mixtures."""

import math

import pytest
import torch
from torch import nn

from rnnbook.language import perplexity
from rnnbook.race import (RegularisedCharLM, SharedMaskDropout, best_mixture_weight, bits_per_character,
                          block_bootstrap_interval, mixture_log_probs, stream_log_probs, warmup_log_probs)
from rnnbook.training import evaluate_perplexity, windowed_perplexity


def test_shared_mask_dropout_keeps_one_mask_for_all_steps():
    torch.manual_seed(0)
    dropout = SharedMaskDropout(0.5)
    out = dropout(torch.ones(7, 3, 11))
    assert torch.equal(out, out[:1].expand_as(out))  # the same mask at every step
    assert set(out.unique().tolist()) <= {0.0, 2.0} and (out == 0).any() and (out == 2).any()
    dropout.eval()
    x = torch.randn(7, 3, 11)
    assert torch.equal(dropout(x), x)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        SharedMaskDropout(1.0)
    with pytest.raises(ValueError, match="time-major"):
        SharedMaskDropout(0.5).train()(torch.ones(3, 4))


def test_plain_model_is_embedding_lstm_linear():
    torch.manual_seed(0)
    model = RegularisedCharLM(6, 8, embedding_size=4)
    tokens = torch.randint(0, 6, (5, 2))
    logits, (h, c) = model(tokens)
    outputs, _ = model.lstm(model.embedding(tokens))
    torch.testing.assert_close(logits, model.head(outputs))
    assert logits.shape == (5, 2, 6) and h.shape == (1, 2, 8)


def test_weight_drop_drops_only_recurrent_matrices_and_only_in_training():
    torch.manual_seed(0)
    model = RegularisedCharLM(6, 8, embedding_size=4, num_layers=2, weight_drop=0.5)
    tokens = torch.randint(0, 6, (5, 2))
    model.eval()
    plain = nn.LSTM(4, 8, 2)
    plain.load_state_dict(model.lstm.state_dict())
    expected, _ = plain(model.embedding(tokens))
    torch.testing.assert_close(model(tokens)[0], model.head(expected))  # evaluation: no drop
    model.train()
    torch.manual_seed(1)
    logits, _ = model(tokens)
    torch.manual_seed(1)  # the same masks, drawn in the same order
    with torch.no_grad():
        for layer in range(2):
            weight = getattr(plain, f"weight_hh_l{layer}")
            weight.copy_(nn.functional.dropout(weight, 0.5))
    dropped, _ = plain(model.embedding(tokens))
    torch.testing.assert_close(logits, model.head(dropped))
    assert all(p.requires_grad for p in model.lstm.parameters())
    logits.sum().backward()
    assert model.lstm.weight_hh_l0.grad is not None and model.lstm.weight_ih_l0.grad is not None


def test_tied_read_out_uses_the_embedding_matrix():
    torch.manual_seed(0)
    model = RegularisedCharLM(6, 8, embedding_size=4, tie_weights=True)
    tokens = torch.randint(0, 6, (5, 2))
    logits, _ = model(tokens)
    outputs, _ = model.lstm(model.embedding(tokens))
    torch.testing.assert_close(logits, model.projection(outputs) @ model.embedding.weight.T + model.output_bias)
    assert model.head is None and not any(p.shape == (6, 8) for p in model.parameters())


def test_embedding_dropout_drops_whole_characters():
    torch.manual_seed(3)
    model = RegularisedCharLM(6, 8, embedding_size=4, embedding_dropout=0.5)
    captured = []
    model.lstm.register_forward_hook(lambda module, args, output: captured.append(args[0]))
    tokens = torch.tensor([[0, 1, 2, 3, 4, 5]] * 3)  # every character three times
    model(tokens)
    rows = captured[0]  # (3, 6, 4)
    zero = (rows == 0).all(-1)
    assert zero.any() and not zero.all()
    assert torch.equal(zero, zero[:1].expand_as(zero))  # a character dropped is dropped everywhere
    torch.testing.assert_close(rows[0][~zero[0]], 2 * model.embedding.weight[~zero[0]])


@pytest.mark.parametrize("options", [dict(num_layers=1, layer_dropout=0.3), dict(dropout=1.0), dict(weight_drop=-0.1)])
def test_model_refuses_bad_settings(options):
    with pytest.raises(ValueError):
        RegularisedCharLM(6, 8, **options)


def small_model_and_corpus():
    torch.manual_seed(0)
    return RegularisedCharLM(7, 16, embedding_size=4, dropout=0.2, weight_drop=0.3), torch.randint(0, 7, (400,))


def test_warmup_scorer_at_warmup_zero_is_the_windowed_scorer():
    model, corpus = small_model_and_corpus()
    scores = warmup_log_probs(model, corpus, 200, 333, warmup=0, window=10)  # a short last window too
    assert scores.shape == (133,) and scores.dtype == torch.float64 and model.training
    assert math.isclose(perplexity(scores), windowed_perplexity(model, corpus[:333], 200, 10), rel_tol=1e-9)


def test_stream_scorer_is_evaluate_perplexity_and_warmup_reads_the_right_characters():
    model, corpus = small_model_and_corpus()
    stream = stream_log_probs(model, corpus, 200, 333, read_from=200 - 65)
    assert math.isclose(perplexity(stream), evaluate_perplexity(model, corpus[:333], 200), rel_tol=1e-9)
    one_each = warmup_log_probs(model, corpus, 200, 210, warmup=50, window=1)
    for i, t in enumerate(range(200, 210)):  # each target read from 51 characters before it
        torch.testing.assert_close(one_each[i], stream_log_probs(model, corpus, t, t + 1, read_from=t - 51)[0])
    with pytest.raises(ValueError):
        warmup_log_probs(model, corpus, 20, 30, warmup=50)
    with pytest.raises(ValueError):
        stream_log_probs(model, corpus, 20, 30, read_from=25)


def test_bits_per_character_is_log2_of_perplexity():
    log_probs = torch.log(torch.tensor([0.5, 0.25, 0.125], dtype=torch.float64))
    assert math.isclose(bits_per_character(log_probs), 2.0)
    assert math.isclose(2 ** bits_per_character(log_probs), perplexity(log_probs))


def test_mixtures_are_distributions_and_the_weight_is_chosen_by_likelihood():
    p, q = torch.tensor([0.5, 0.2, 0.3], dtype=torch.float64), torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64)
    for weight in (0.0, 0.3, 1.0):
        mixed = mixture_log_probs(p.log(), q.log(), weight).exp()
        torch.testing.assert_close(mixed, weight * p + (1 - weight) * q)
        assert math.isclose(float(mixed.sum()), 1.0, rel_tol=1e-12)
    # each model is right half the time: the best mixture is even
    good, bad = torch.tensor([0.9, 0.1] * 10).log(), torch.tensor([0.1, 0.9] * 10).log()
    assert best_mixture_weight(good, bad) == 0.5
    assert best_mixture_weight(good, good - 1.0) == 1.0  # a better model everywhere takes all the weight
    with pytest.raises(ValueError):
        mixture_log_probs(p.log(), q.log(), 1.5)
    with pytest.raises(ValueError, match="different targets"):
        mixture_log_probs(p.log(), q[:2].log(), 0.5)


def test_block_bootstrap_covers_the_mean_and_widens_with_correlation():
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(4000, generator=generator, dtype=torch.float64)
    low, high = block_bootstrap_interval(noise + 1.0, block=1)
    assert low < 1.0 < high and 0.04 < high - low < 0.09  # about 4 standard errors of 1/sqrt(4000)
    correlated = noise.reshape(-1, 50).mean(1).repeat_interleave(50)  # blocks of 50 equal values
    narrow = block_bootstrap_interval(correlated, block=1)
    wide = block_bootstrap_interval(correlated, block=100)
    assert (wide[1] - wide[0]) > 3 * (narrow[1] - narrow[0])
    assert block_bootstrap_interval(noise, block=20, seed=3) == block_bootstrap_interval(noise, block=20, seed=3)
