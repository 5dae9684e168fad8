"""rnnbook.practice (chapter 12): the model, the recipe, the training loop, evaluation and transfer."""

import math
from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from rnnbook.language import preprocess
from rnnbook.practice import (CharRNN, Recipe, SnippetClassifier, boundary_windows, classification_accuracy,
                              learning_rate_factor, sentence_ends, train_char_model,
                              train_snippet_classifier)
from rnnbook.training import evaluate_perplexity, windowed_perplexity

V = 7


def text(length=6000, seed=0):
    """A corpus with structure (a repeated pattern with noise) and a 10% validation tail."""
    generator = torch.Generator().manual_seed(seed)
    pattern = torch.tensor([0, 1, 2, 3, 4, 5, 6, 1, 3, 5])
    corpus = pattern.repeat(length // len(pattern) + 1)[:length].clone()
    noise = torch.rand(length, generator=generator) < 0.05
    corpus[noise] = torch.randint(V, (int(noise.sum()),), generator=generator)
    split = int(0.9 * length)
    return corpus, corpus[:split], split


# --- CharRNN ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("embedding_size", [None, 3])
def test_char_rnn_shapes_for_every_kind_and_input(kind, embedding_size):
    model = CharRNN(V, 5, kind=kind, num_layers=2, embedding_size=embedding_size, dropout=0.2, layer_dropout=0.1)
    logits, state = model(torch.randint(V, (4, 3)))
    assert logits.shape == (4, 3, V)
    h = state[0] if kind == "LSTM" else state
    assert h.shape == (2, 3, 5)
    assert model.recurrent.input_size == (embedding_size or V)


def test_char_rnn_one_hot_equals_embedding_with_the_same_weights():
    torch.manual_seed(0)
    one_hot = CharRNN(V, 5)
    embedded = CharRNN(V, 5, embedding_size=V)
    embedded.load_state_dict(one_hot.state_dict(), strict=False)
    with torch.no_grad():
        embedded.embedding.weight.copy_(torch.eye(V))
    tokens = torch.randint(V, (6, 2))
    torch.testing.assert_close(embedded(tokens)[0], one_hot(tokens)[0])


def test_char_rnn_dropout_acts_in_training_mode_only():
    torch.manual_seed(0)
    model = CharRNN(V, 16, embedding_size=4, dropout=0.5)
    tokens = torch.randint(V, (5, 3))
    model.train()
    assert not torch.equal(model(tokens)[0], model(tokens)[0])
    model.eval()
    assert torch.equal(model(tokens)[0], model(tokens)[0])


def test_char_rnn_carries_a_state_between_calls():
    torch.manual_seed(0)
    model = CharRNN(V, 5, embedding_size=3).eval()
    tokens = torch.randint(V, (8, 2))
    whole, _ = model(tokens)
    first, state = model(tokens[:3])
    second, _ = model(tokens[3:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole)


@pytest.mark.parametrize("options, message", [
    (dict(kind="LSTMCell"), "kind"),
    (dict(num_layers=0), "positive"),
    (dict(dropout=1.0), "dropout"),
    (dict(layer_dropout=0.2), "between stacked layers"),
])
def test_char_rnn_refuses_bad_configurations(options, message):
    with pytest.raises(ValueError, match=message):
        CharRNN(V, 5, **options)


def test_char_rnn_refuses_bad_tokens():
    model = CharRNN(V, 5)
    with pytest.raises(ValueError, match="int64 tokens"):
        model(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"shape \(T, B\)"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="indices"):
        model(torch.full((4, 3), V))


# --- Recipe and schedule -------------------------------------------------------------


def test_learning_rate_factor_warms_up_linearly_then_decays_by_cosine():
    recipe = Recipe(steps=110, warmup=10, schedule="cosine")
    factors = [learning_rate_factor(recipe, step) for step in range(recipe.steps)]
    assert factors[:10] == pytest.approx([(step + 1) / 10 for step in range(10)])
    assert factors[10] == pytest.approx(1.0)
    assert factors[60] == pytest.approx(0.5)  # half way through the cosine
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert 0 < factors[-1] < 1e-3
    constant = Recipe(steps=110, warmup=10, schedule="constant")
    assert [learning_rate_factor(constant, step) for step in range(10, 110)] == [1.0] * 100


@pytest.mark.parametrize("options", [dict(steps=0), dict(schedule="linear"),
                                     dict(lr=0.0), dict(clip_norm=-1.0), dict(warmup=300), dict(patience=-1)])
def test_recipe_refuses_bad_settings(options):
    with pytest.raises(ValueError):
        Recipe(**{"steps": 300, **options})


# --- the training loop ---------------------------------------------------------------


class StateRecorder(nn.Module):
    """Records the state each training call receives and returns."""

    def __init__(self, model):
        super().__init__()
        self.model, self.received, self.returned = model, [], []

    def forward(self, tokens, state=None):
        logits, new_state = self.model(tokens, state)
        if self.training:
            self.received.append(state)
            self.returned.append(new_state)
        return logits, new_state


def test_training_loop_carries_the_detached_state_in_stateful_mode():
    corpus, train, split = text()
    torch.manual_seed(0)
    recorder = StateRecorder(CharRNN(V, 6, embedding_size=3))
    train_char_model(recorder, train, corpus, split, Recipe(steps=6, batch_size=4, num_steps=8, warmup=0, eval_every=6))
    assert recorder.received[0] is None
    for before, after in zip(recorder.returned[:-1], recorder.received[1:]):
        assert after is not None, "the carried state was dropped"
        for a, b in zip(before, after):
            assert torch.equal(a, b) and not b.requires_grad


def test_training_loop_starts_every_chunk_from_zeros_in_stateless_mode():
    corpus, train, split = text()
    recorder = StateRecorder(CharRNN(V, 6, embedding_size=3))
    train_char_model(recorder, train, corpus, split,
                     Recipe(steps=6, batch_size=4, num_steps=8, warmup=0, eval_every=6, stateful=False))
    assert len(recorder.received) == 6 and all(state is None for state in recorder.received)


def test_carrying_the_state_changes_training():
    corpus, train, split = text()
    finals = []
    for stateful in (True, False):
        torch.manual_seed(0)
        model = CharRNN(V, 6, embedding_size=3)
        train_char_model(model, train, corpus, split,
                         Recipe(steps=20, batch_size=4, num_steps=8, warmup=0, eval_every=20, stateful=stateful))
        finals.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert not torch.allclose(*finals)


def test_training_reduces_validation_perplexity_and_records_history():
    corpus, train, split = text()
    torch.manual_seed(0)
    model = CharRNN(V, 16, embedding_size=4)
    before = evaluate_perplexity(model, corpus, split)
    history = train_char_model(model, train, corpus, split,
                               Recipe(steps=60, batch_size=8, num_steps=10, lr=1e-2, warmup=5, eval_every=20))
    assert history["step"] == [20, 40, 60]
    assert history["val_ppl"][-1] < 0.5 * before
    assert all(len(history[key]) == 3 for key in ("val_ppl", "train_ppl", "lr", "grad_norm", "clipped"))
    assert history["best_val_ppl"] == min(history["val_ppl"]) and not history["stopped_early"]


def test_also_score_records_extra_perplexities_without_steering_early_stopping():
    corpus, train, split = text()
    torch.manual_seed(0)
    model = CharRNN(V, 16, embedding_size=4)
    history = train_char_model(model, train, corpus[:split + 300], split,
                               Recipe(steps=40, batch_size=8, num_steps=10, lr=1e-2, warmup=5, eval_every=20),
                               also_score={"test_ppl": (corpus, split + 300), "training_ppl": (train, 1)})
    assert len(history["test_ppl"]) == len(history["training_ppl"]) == len(history["val_ppl"]) == 2
    model.train()  # the scores are taken in evaluation mode whatever the mode before
    assert history["test_ppl"][-1] == evaluate_perplexity(model, corpus, split + 300)
    assert history["training_ppl"][-1] == evaluate_perplexity(model, train, 1)
    assert history["val_ppl"][-1] == evaluate_perplexity(model, corpus[:split + 300], split)
    assert model.training
    with pytest.raises(ValueError, match="history's own keys"):
        train_char_model(model, train, corpus, split, Recipe(steps=2, warmup=0, eval_every=2),
                         also_score={"val_ppl": (corpus, split)})


def test_training_is_reproducible_with_a_seed():
    corpus, train, split = text()
    results = []
    for _ in range(2):
        torch.manual_seed(3)
        model = CharRNN(V, 8, embedding_size=3)
        results.append(train_char_model(model, train, corpus, split,
                                        Recipe(steps=10, batch_size=4, num_steps=8, warmup=0, eval_every=10),
                                        seed=5)["val_ppl"])
    assert results[0] == results[1]


def test_clipping_by_value_and_by_norm_bound_the_gradients_the_optimiser_sees():
    corpus, train, split = text()
    seen = []
    hook = register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: seen.append([p.grad.clone() for g in optimizer.param_groups for p in g["params"]]))
    try:
        for clip in (dict(clip_value=1e-4, clip_norm=0.0), dict(clip_norm=1e-4)):
            torch.manual_seed(0)
            history = train_char_model(CharRNN(V, 6, embedding_size=3), train, corpus, split,
                                       Recipe(steps=2, batch_size=4, num_steps=8, warmup=0, eval_every=2, **clip))
            assert history["clipped"] == [1.0]
    finally:
        hook.remove()
    assert max(float(g.abs().max()) for grads in seen[:2] for g in grads) <= 1e-4 * (1 + 1e-6)
    for grads in seen[2:]:
        assert float(torch.cat([g.flatten() for g in grads]).norm()) == pytest.approx(1e-4, rel=1e-4)


def test_weight_decay_spares_biases():
    corpus, train, split = text()
    torch.manual_seed(0)
    model = CharRNN(V, 6, embedding_size=3)
    seen = []
    hook = register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: seen.append([(g["weight_decay"], [p.ndim for p in g["params"]])
                                                     for g in optimizer.param_groups]))
    try:
        train_char_model(model, train, corpus, split,
                         Recipe(steps=1, batch_size=4, num_steps=8, warmup=0, weight_decay=0.5, eval_every=1))
    finally:
        hook.remove()
    groups = seen[0]
    assert groups[0][0] == 0.5 and all(ndim >= 2 for ndim in groups[0][1])
    assert groups[1][0] == 0.0 and all(ndim == 1 for ndim in groups[1][1])


def test_early_stopping_stops_and_restores_the_best_weights():
    corpus, train, split = text(length=3000)
    torch.manual_seed(0)
    model = CharRNN(V, 48, embedding_size=8)
    history = train_char_model(model, train[:400], corpus, split,
                               Recipe(steps=600, batch_size=4, num_steps=8, lr=3e-2, schedule="constant",
                                      warmup=0, eval_every=10, patience=2))
    assert history["stopped_early"]
    assert history["step"][-1] < 600
    assert history["val_ppl"][-1] > history["best_val_ppl"]
    assert evaluate_perplexity(model, corpus, split) == history["best_val_ppl"]


# --- evaluation ----------------------------------------------------------------------


def test_windowed_perplexity_resets_the_state_every_window():
    torch.manual_seed(0)
    corpus, _, split = text(length=400)
    model = CharRNN(V, 8, embedding_size=3).eval()
    window = 7
    inputs, targets = corpus[split - 1:-1], corpus[split:]
    log_probs = []
    for start in range(0, len(targets), window):
        logits, _ = model(inputs[start:start + window, None])
        log_probs.append(torch.log_softmax(logits[:, 0].double(), -1)[torch.arange(len(logits)),
                                                                         targets[start:start + window]])
    expected = math.exp(-torch.cat(log_probs).mean().item())
    assert windowed_perplexity(model, corpus, split, window) == pytest.approx(expected, rel=1e-6)
    # a window as long as the text is the stream read from a zero state at corpus[split - 1]
    assert windowed_perplexity(model, corpus, split, len(targets)) == pytest.approx(
        evaluate_perplexity(model, corpus, split, warmup=0), rel=1e-6)
    with pytest.raises(ValueError):
        windowed_perplexity(model, corpus, split, 0)


# --- gate biases ---------------------------------------------------------------------


def test_sentence_ends_marks_the_spaces_that_replaced_sentence_punctuation():
    raw = "The end. Is it? Yes!  Mr. Filby said--nothing\n\nNew"
    ends = sentence_ends(raw)
    text = preprocess(raw)
    assert len(ends) == len(text)
    marked = [text[:index] for index in ends.nonzero().flatten().tolist()]
    assert marked == ["the end", "the end is it", "the end is it yes", "the end is it yes mr"]
    assert all(text[index] == " " for index in ends.nonzero().flatten().tolist())


def test_boundary_windows_cut_the_right_snippets():
    corpus = torch.arange(20)
    ends = torch.zeros(20, dtype=torch.bool)
    ends[10] = True
    tokens, labels = boundary_windows(corpus, ends, [5, 10], before=3, after=1)
    assert torch.equal(tokens[:, 0], torch.tensor([2, 3, 4, 5, 6]))
    assert torch.equal(tokens[:, 1], torch.tensor([7, 8, 9, 10, 11]))
    assert labels.tolist() == [0, 1]
    with pytest.raises(ValueError, match="room|needs"):
        boundary_windows(corpus, ends, [1], before=3, after=1)


def test_sequence_classifier_learns_a_task_the_last_state_can_solve():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(V, (6, 200), generator=generator)
    labels = (tokens[-1] < 3).long()  # depends on the last token only
    model = SnippetClassifier(CharRNN(V, 16, embedding_size=4), 2)
    assert model(tokens).shape == (200, 2)
    before = classification_accuracy(model, tokens, labels)
    history = train_snippet_classifier(model, tokens, labels, steps=150, lr=1e-2, seed=0)
    losses = history["losses"]
    assert len(losses) == 150 and losses[-1] < losses[0]
    assert history["step"] == [] and history["best_step"] is None
    assert classification_accuracy(model, tokens, labels) > max(0.95, before)
    with pytest.raises(ValueError, match="labels"):
        train_snippet_classifier(model, tokens, labels[:10], steps=1, lr=1e-2)
    with pytest.raises(ValueError, match="2 classes"):
        SnippetClassifier(CharRNN(V, 4), 1)


def test_train_classifier_on_features_along_dimension_zero():
    torch.manual_seed(0)
    features = torch.randn(100, 3)
    labels = (features[:, 0] > 0).long()
    probe = nn.Linear(3, 2)
    train_snippet_classifier(probe, features, labels, steps=200, lr=5e-2, seed=0, batch_dim=0)
    assert classification_accuracy(probe, features, labels) > 0.9


def test_train_classifier_keeps_the_weights_of_the_best_validation_accuracy():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(200, 3, generator=generator)
    labels = (features[:, 0] > 0).long()
    validation = (features[100:], 1 - labels[100:])  # inverted: learning the task lowers its accuracy
    probe = nn.Linear(3, 2)
    history = train_snippet_classifier(probe, features[:100], labels[:100], steps=60, lr=5e-2, seed=0,
                                       batch_dim=0, validation=validation, eval_every=10)
    assert history["step"] == [10, 20, 30, 40, 50, 60]
    best = max(history["val_accuracy"])
    assert history["best_val_accuracy"] == best
    assert history["best_step"] == history["step"][history["val_accuracy"].index(best)]  # the first best
    assert history["best_step"] < 60 and history["val_accuracy"][-1] < best
    assert classification_accuracy(probe, *validation) == best  # the best weights were restored
    with pytest.raises(ValueError, match="eval_every"):
        train_snippet_classifier(probe, features, labels, steps=1, lr=1e-2, batch_dim=0, eval_every=0)
