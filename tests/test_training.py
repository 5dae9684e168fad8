"""rnnbook.training (chapter 2): batching, the language model, evaluation, generation."""

import math

import pytest
import torch
from torch import nn

from rnnbook.language import Vocab
from rnnbook.rnn import RNNScratch
from rnnbook.training import (CharLM, clipped_update, count_parameters, detach_state, evaluate_perplexity,
                              generate, stream_batches, train_language_model)


def test_stream_batches_are_contiguous_streams_with_shifted_targets():
    tokens = torch.arange(103)
    chunks = list(stream_batches(tokens, batch_size=4, num_steps=5, offset=2))
    steps = (103 - 2 - 1) // 4  # 25 steps per stream
    assert len(chunks) == steps // 5
    for X, Y in chunks:
        assert X.shape == Y.shape == (5, 4)
        assert torch.equal(Y, X + 1)  # the next token of arange is x + 1
    stream_1 = torch.cat([X[:, 1] for X, _ in chunks])
    assert torch.equal(stream_1, torch.arange(2 + steps, 2 + 2 * steps))


@pytest.mark.parametrize("args", [(0, 5, 0), (4, 0, 0), (4, 5, -1)])
def test_stream_batches_refuses_bad_arguments(args):
    with pytest.raises(ValueError):
        next(stream_batches(torch.arange(100), *args))


def test_stream_batches_refuses_too_short_text():
    with pytest.raises(ValueError, match="too few"):
        next(stream_batches(torch.arange(10), batch_size=4, num_steps=5))


def test_detach_state_handles_tensors_tuples_and_none():
    h = torch.ones(2, requires_grad=True) * 2
    assert detach_state(None) is None
    assert not detach_state(h).requires_grad
    assert all(not part.requires_grad for part in detach_state((h, h * 3)))


def test_char_lm_shapes_and_input_checks():
    model = CharLM(RNNScratch(6, 5), 6)
    logits, state = model(torch.randint(6, (4, 3)))
    assert logits.shape == (4, 3, 6) and state.shape == (3, 5)
    with pytest.raises(ValueError, match="int64 tokens"):
        model(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"shape \(T, B\)"):
        model(torch.zeros(4, dtype=torch.long))


def test_char_lm_accepts_pytorch_layers():
    for layer in (nn.RNN(6, 5), nn.LSTM(6, 5), nn.GRU(6, 5)):
        logits, state = CharLM(layer, 6)(torch.randint(6, (4, 3)))
        assert logits.shape == (4, 3, 6)


@pytest.mark.parametrize("warmup", [0, 1, 10, 100])
def test_evaluate_perplexity_scores_every_target_after_reading_the_warmup(warmup):
    torch.manual_seed(0)
    model = CharLM(RNNScratch(5, 4), 5)
    corpus = torch.randint(5, (60,))
    start = 40
    first = max(start - 1 - warmup, 0)  # the model reads corpus[first:] from a zero state
    logits, _ = model(corpus[first:-1, None])
    log_probs = torch.log_softmax(logits[:, 0].double(), -1)
    targets = corpus[first + 1:]
    scored = log_probs[torch.arange(len(targets)), targets][start - first - 1:]
    assert len(scored) == len(corpus) - start  # every validation token, and only those
    direct = math.exp(-scored.mean().item())
    assert math.isclose(evaluate_perplexity(model, corpus, start, warmup), direct, rel_tol=1e-9)


def test_evaluate_perplexity_refuses_bad_arguments():
    model = CharLM(RNNScratch(5, 4), 5)
    corpus = torch.randint(5, (60,))
    with pytest.raises(ValueError):
        evaluate_perplexity(model, corpus, 0)
    with pytest.raises(ValueError):
        evaluate_perplexity(model, corpus, 10, warmup=-1)


class StateSpy(nn.Module):
    """An nn.RNN that records the state each call receives and returns."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.rnn, self.hidden_size = nn.RNN(input_size, hidden_size), hidden_size
        self.received, self.returned = [], []

    def forward(self, inputs, state=None):
        if self.training:
            self.received.append(None if state is None else state.clone())
        outputs, new_state = self.rnn(inputs, state)
        if self.training:
            self.returned.append(new_state.detach().clone())
        return outputs, new_state


def test_training_carries_the_detached_state_from_chunk_to_chunk():
    """Fails if the loop starts chunks from None (dropping the state) or keeps the graph."""
    torch.manual_seed(0)
    spy = StateSpy(4, 3)
    tokens = torch.randint(4, (400,))
    train_language_model(CharLM(spy, 4), tokens[:300], tokens, 300, epochs=1, batch_size=2,
                         num_steps=10, log=False)
    assert spy.received[0] is None and len(spy.received) > 3
    for received, previous in zip(spy.received[1:], spy.returned[:-1]):
        assert received is not None, "a chunk started from a zero state: the carried state was dropped"
        assert torch.equal(received, previous) and not received.requires_grad


def test_stateless_training_starts_every_chunk_from_zeros():
    torch.manual_seed(0)
    spy = StateSpy(4, 3)
    tokens = torch.randint(4, (400,))
    train_language_model(CharLM(spy, 4), tokens[:300], tokens, 300, epochs=1, batch_size=2,
                         num_steps=10, log=False, stateful=False)
    assert len(spy.received) > 3 and all(received is None for received in spy.received)


def test_clipped_update_clears_clips_and_steps_and_returns_the_norm_before_clipping():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.full_like(p, 100.0)  # stale gradients must not leak into the update
    x = torch.randn(5, 3)
    loss = (model(x) ** 2).sum() * 50
    expected = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
    norm = clipped_update(model, optimizer, loss, clip=0.5)
    assert norm == pytest.approx(torch.cat([g.flatten() for g in expected]).norm().item(), rel=1e-6) and norm > 0.5
    step = torch.cat([(b - p.detach()).flatten() for b, p in zip(before, model.parameters())])
    torch.testing.assert_close(step.norm(), torch.tensor(0.5))  # lr 1: the step is the clipped gradient
    torch.testing.assert_close(step, 0.5 * torch.cat([g.flatten() for g in expected]) / norm)


def test_count_parameters_counts_every_number():
    assert count_parameters(nn.Linear(3, 2)) == 3 * 2 + 2
    assert count_parameters(CharLM(RNNScratch(5, 4), 5)) == 4 * 5 + 4 * 4 + 2 * 4 + 5 * 4 + 5


def test_training_learns_a_repeating_pattern():
    torch.manual_seed(0)
    pattern = torch.tensor([0, 1, 2, 3, 2, 1] * 120)
    model = CharLM(RNNScratch(4, 16), 4)
    history = train_language_model(model, pattern[:600], pattern, 600, epochs=6, batch_size=4,
                                   num_steps=8, lr=0.02, log=False)
    assert history["val_ppl"][-1] < 1.3  # the pattern is deterministic given two tokens
    assert history["val_ppl"][-1] < history["val_ppl"][0]
    assert set(history) == {"epoch", "train_ppl", "val_ppl", "grad_norm", "clipped", "seconds"}


def test_generate_greedy_and_sampled():
    torch.manual_seed(0)
    vocab = Vocab("ab ")
    model = CharLM(RNNScratch(len(vocab), 8), len(vocab))
    greedy = generate(model, vocab, "ab", 10, temperature=0)
    assert greedy.startswith("ab") and len(greedy) == 12
    assert greedy == generate(model, vocab, "ab", 10, temperature=0)
    first = generate(model, vocab, "ab", 10, generator=torch.Generator().manual_seed(1))
    assert first == generate(model, vocab, "ab", 10, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="prefix"):
        generate(model, vocab, "", 5)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, vocab, "a", 5, temperature=-1)
