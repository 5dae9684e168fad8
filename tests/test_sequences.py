"""rnnbook.sequences (chapter 13): padding, masks, masked losses, final states, the
Japanese Vowels loader, baselines and the packed sequence classifier."""

import importlib.metadata

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnbook import sequences as sq
from rnnbook.sequences import (SequenceClassifier, balanced_folds, channel_statistics, check_lengths,
                               cross_validate_l2, final_state, fit_logistic_regression, labelled_batches,
                               last_step, length_mask, load_japanese_vowels, masked_cross_entropy, masked_mean,
                               mcnemar_test, pad_batch, parse_ts, predict_classes, standardize, summary_features,
                               train_classifier)




def random_sequences(lengths, features=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(length, features, generator=generator) for length in lengths]


# --- lengths, padding and masks ---------------------------------------------------------

def test_check_lengths_converts_to_int64_on_the_cpu():
    lengths = check_lengths([3, 1, 2])
    assert lengths.dtype == torch.int64 and lengths.device.type == "cpu"
    assert lengths.tolist() == [3, 1, 2]
    assert check_lengths(torch.tensor([4, 4], dtype=torch.int32), max_length=4).tolist() == [4, 4]


@pytest.mark.parametrize("bad, message", [
    ([3, 0, 2], "at least one step"),
    ([-1], "at least one step"),
    ([2.0, 1.0], "integer"),
    ([[1, 2]], "1-D"),
    ([], "non-empty"),
    ([True, False], "integer"),
])
def test_check_lengths_rejects_what_is_not_a_length(bad, message):
    with pytest.raises(ValueError, match=message):
        check_lengths(torch.tensor(bad))


def test_check_lengths_rejects_a_length_longer_than_the_batch():
    with pytest.raises(ValueError, match="a length of 6 does not fit a padded batch of 5 steps"):
        check_lengths([6, 2], max_length=5)


def test_check_lengths_wants_one_length_per_sequence_when_told_the_batch_size():
    assert check_lengths([3, 1], max_length=5, batch_size=2).tolist() == [3, 1]
    with pytest.raises(ValueError, match="3 lengths for a batch of 2 sequences"):
        check_lengths([3, 1, 2], max_length=5, batch_size=2)


def test_pad_batch_shapes_values_and_lengths():
    sequences = random_sequences([4, 1, 3])
    padded, lengths = pad_batch(sequences, padding_value=-7.0)
    assert padded.shape == (4, 3, 3) and lengths.tolist() == [4, 1, 3]
    assert lengths.dtype == torch.int64
    for b, sequence in enumerate(sequences):
        assert torch.equal(padded[:len(sequence), b], sequence)
        assert (padded[len(sequence):, b] == -7.0).all()


@pytest.mark.parametrize("bad, message", [
    ([], "at least one sequence"),
    ([torch.zeros(3)], "sequence 0 must be a tensor"),
    ([torch.zeros(2, 3), torch.zeros(0, 3)], "sequence 1 must be a tensor"),
    ([torch.zeros(2, 3), torch.zeros(2, 4)], "sequence 1 has 4 features, sequence 0 has 3"),
    ([[1.0, 2.0]], "sequence 0 must be a tensor"),
])
def test_pad_batch_rejects_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        pad_batch(bad)


def test_length_mask_marks_real_steps():
    mask = length_mask([3, 1, 2])
    expected = torch.tensor([[1, 1, 1], [1, 0, 1], [1, 0, 0]], dtype=torch.bool)
    assert torch.equal(mask, expected)
    longer = length_mask([3, 1, 2], max_length=5)
    assert longer.shape == (5, 3) and not longer[3:].any()
    with pytest.raises(ValueError, match="does not fit"):
        length_mask([3, 1], max_length=2)


# --- masked losses ------------------------------------------------------------------------

def test_masked_mean_ignores_whatever_the_padding_holds():
    values = torch.tensor([[1.0, 2.0], [3.0, float("inf")], [float("nan"), -4.0]])
    mask = torch.tensor([[True, True], [True, False], [False, True]])
    assert float(masked_mean(values, mask)) == pytest.approx((1 + 2 + 3 - 4) / 4)


def test_masked_mean_gradient_is_clean_for_finite_padding_only():
    mask = torch.tensor([True, True, False])
    for padding, finite in ((1000.0, True), (float("inf"), False), (float("nan"), False)):
        inputs = torch.tensor([1.0, 2.0, padding], requires_grad=True)
        value = masked_mean(inputs ** 2, mask)  # d/dx x^2 = 2x: a derivative computed from the padding
        value.backward()
        assert float(value) == pytest.approx(2.5)
        assert bool(torch.isfinite(inputs.grad).all()) == finite


def test_masked_mean_rejects_bad_masks():
    values = torch.ones(2, 3)
    with pytest.raises(ValueError, match="bool mask"):
        masked_mean(values, torch.ones(2, 3))
    with pytest.raises(ValueError, match="bool mask"):
        masked_mean(values, torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="selects no entries"):
        masked_mean(values, torch.zeros(2, 3, dtype=torch.bool))


def test_masked_cross_entropy_equals_ignore_index_and_ignores_the_padding():
    torch.manual_seed(0)
    lengths = torch.tensor([5, 2, 4])
    logits = torch.randn(5, 3, 4, requires_grad=True)
    targets = torch.randint(4, (5, 3))
    mask = length_mask(lengths)
    with_ignore = targets.masked_fill(~mask, -100)
    expected = F.cross_entropy(logits.reshape(-1, 4), with_ignore.reshape(-1), ignore_index=-100)
    loss = masked_cross_entropy(logits, targets, lengths)
    torch.testing.assert_close(loss, expected)
    # invalid classes and other logits in the padding change nothing, and get no gradient
    junk_targets = targets.masked_fill(~mask, 99)
    junk_logits = torch.where(mask[..., None], logits, torch.full_like(logits, 1e4))
    torch.testing.assert_close(masked_cross_entropy(junk_logits, junk_targets, lengths), loss)
    (gradient,) = torch.autograd.grad(loss, logits)
    assert (gradient[~mask] == 0).all() and (gradient[mask].abs().sum(dim=-1) > 0).all()


def test_masked_cross_entropy_is_a_plain_mean_without_padding():
    torch.manual_seed(1)
    logits, targets = torch.randn(4, 2, 3), torch.randint(3, (4, 2))
    torch.testing.assert_close(masked_cross_entropy(logits, targets, [4, 4]),
                               F.cross_entropy(logits.reshape(-1, 3), targets.reshape(-1)))


def test_masked_cross_entropy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"expected logits \(T, B, C\) and targets \(T, B\)"):
        masked_cross_entropy(torch.randn(4, 2, 3), torch.zeros(4, 3, dtype=torch.long), [4, 4])
    with pytest.raises(ValueError, match="3 lengths for a batch of 2"):
        masked_cross_entropy(torch.randn(4, 2, 3), torch.zeros(4, 2, dtype=torch.long), [4, 4, 4])


# --- final states -----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_final_state_and_last_step_agree_with_a_packed_run(kind, bidirectional):
    torch.manual_seed(2)
    H = 5
    module = getattr(nn, kind)(3, H, num_layers=2, bidirectional=bidirectional)
    sequences = random_sequences([4, 6, 1, 3])
    padded, lengths = pad_batch(sequences)
    packed_outputs, state = module(pack_padded_sequence(padded, lengths, enforce_sorted=False))
    outputs, _ = pad_packed_sequence(packed_outputs)
    h_n = state[0] if kind == "LSTM" else state
    final = final_state(h_n, bidirectional)
    assert final.shape == (4, (2 if bidirectional else 1) * H)
    at_last = last_step(outputs, lengths)
    torch.testing.assert_close(final[:, :H], at_last[:, :H])
    if bidirectional:
        torch.testing.assert_close(final[:, H:], outputs[0, :, H:])
    for b, sequence in enumerate(sequences):  # and both equal the sequence run alone
        _, alone = module(sequence[:, None])
        alone_h = alone[0] if kind == "LSTM" else alone
        torch.testing.assert_close(final[b], final_state(alone_h, bidirectional)[0])


def test_last_step_picks_each_sequences_own_step():
    outputs = torch.arange(4 * 3, dtype=torch.float32).view(4, 3, 1)  # value = 3 t + b
    assert last_step(outputs, [2, 4, 1])[:, 0].tolist() == [3.0, 10.0, 2.0]


def test_last_step_and_final_state_reject_bad_input():
    with pytest.raises(ValueError, match="time-major outputs"):
        last_step(torch.zeros(4, 3), [1, 2, 3])
    with pytest.raises(ValueError, match="2 lengths for a batch of 3"):
        last_step(torch.zeros(4, 3, 2), [1, 2])
    with pytest.raises(ValueError, match="does not fit"):
        last_step(torch.zeros(4, 3, 2), [1, 2, 5])
    with pytest.raises(ValueError, match="even number of rows"):
        final_state(torch.zeros(3, 2, 4), bidirectional=True)
    with pytest.raises(ValueError, match="num_layers"):
        final_state(torch.zeros(2, 4), bidirectional=False)


# --- the .ts parser and the Japanese Vowels files -------------------------------------------

TS_TEXT = """# a comment
@problemName Toy
@univariate false
@classLabel true a b c
@data
1.0,2.0,3.0:4.0,5.0,6.0:b
0.5:1.5:c
"""


def test_parse_ts_reads_dimensions_lengths_and_labels():
    sequences, labels = parse_ts(TS_TEXT.splitlines())
    assert [tuple(s.shape) for s in sequences] == [(3, 2), (1, 2)]
    assert sequences[0].dtype == torch.float32
    assert sequences[0][:, 1].tolist() == [4.0, 5.0, 6.0]
    assert labels.tolist() == [1, 2]


@pytest.mark.parametrize("data, message", [
    ("1,2:3,4:d", "label 'd' is not one of"),
    ("1,2:3:a", "dimensions of different lengths"),
    ("1,2:3,x:a", "line 6"),
    ("1,2:3,4:a\n1,2:3,4:5,6:a", "3 dimensions, earlier lines have 2"),
])
def test_parse_ts_rejects_malformed_data(data, message):
    with pytest.raises(ValueError, match=message):
        parse_ts((TS_TEXT.split("@data")[0] + "@data\n" + data).splitlines())


def test_parse_ts_needs_a_label_header_and_data():
    with pytest.raises(ValueError, match="@data before"):
        parse_ts(["@data", "1,2:a"])
    with pytest.raises(ValueError, match="no data lines"):
        parse_ts(["@classLabel true a b", "@data"])


def test_japanese_vowels_has_the_documented_shape():
    train_sequences, train_labels = load_japanese_vowels("train")
    test_sequences, test_labels = load_japanese_vowels("test")
    assert len(train_sequences) == 270 and len(test_sequences) == 370
    assert torch.equal(torch.bincount(train_labels), torch.full((9,), 30))
    assert torch.bincount(test_labels).tolist() == [31, 35, 88, 44, 29, 24, 40, 50, 29]
    lengths = [len(s) for s in train_sequences + test_sequences]
    assert min(lengths) == 7 and max(lengths) == 29
    assert all(s.shape[1] == 12 and s.dtype == torch.float32 for s in train_sequences + test_sequences)


def test_japanese_vowels_errors_say_what_to_do(monkeypatch):
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_japanese_vowels("validation")

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(sq.importlib.metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps sktime==1\.2\.0"):
        load_japanese_vowels("train")


# --- features and baselines -------------------------------------------------------------------

def test_standardize_with_training_statistics():
    sequences = random_sequences([5, 3, 8], features=4)
    sequences = [2.0 + 3.0 * s for s in sequences]
    mean, std = channel_statistics(sequences)
    steps = torch.cat(standardize(sequences, mean, std))
    torch.testing.assert_close(steps.mean(dim=0), torch.zeros(4), atol=1e-6, rtol=0)
    torch.testing.assert_close(steps.std(dim=0), torch.ones(4))


def test_summary_features_are_mean_and_std_over_time():
    sequences = random_sequences([5, 2], features=3)
    features = summary_features(sequences)
    assert features.shape == (2, 6)
    torch.testing.assert_close(features[1], torch.cat([sequences[1].mean(0), sequences[1].std(0)]))


def test_logistic_regression_separates_separable_classes_and_l2_shrinks_it():
    generator = torch.Generator().manual_seed(3)
    centres = torch.tensor([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    labels = torch.arange(3).repeat_interleave(20)
    features = centres[labels] + 0.5 * torch.randn(60, 2, generator=generator)
    model = fit_logistic_regression(features, labels, 3)
    assert torch.equal(model(features).argmax(dim=1), labels)
    shrunk = fit_logistic_regression(features, labels, 3, l2=1.0)
    assert shrunk.weight.norm() < 0.5 * model.weight.norm()
    assert not any(parameter.requires_grad for parameter in model.parameters())


def test_logistic_regression_rejects_bad_input():
    with pytest.raises(ValueError, match=r"features \(N, F\) and labels \(N,\)"):
        fit_logistic_regression(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="l2 must be >= 0"):
        fit_logistic_regression(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), 2, l2=-1.0)


# --- the classifier, batches and training -------------------------------------------------------

@pytest.mark.parametrize("kind, bidirectional", [("GRU", False), ("LSTM", True), ("RNN", True)])
def test_classifier_does_not_depend_on_batch_or_padding(kind, bidirectional):
    torch.manual_seed(4)
    model = SequenceClassifier(getattr(nn, kind)(3, 6, bidirectional=bidirectional), 4)
    sequences = random_sequences([5, 1, 7, 3])
    padded, lengths = pad_batch(sequences)
    logits = model(padded, lengths)
    assert logits.shape == (4, 4)
    junk, _ = pad_batch(sequences, padding_value=100.0)
    torch.testing.assert_close(model(junk, lengths), logits)
    for b, sequence in enumerate(sequences):
        torch.testing.assert_close(model(sequence[:, None], [len(sequence)])[0], logits[b])


def test_classifier_rejects_bad_input():
    with pytest.raises(ValueError, match="time-major"):
        SequenceClassifier(nn.GRU(3, 4, batch_first=True), 2)
    with pytest.raises(ValueError, match="at least 2 classes"):
        SequenceClassifier(nn.GRU(3, 4), 1)
    model = SequenceClassifier(nn.GRU(3, 4), 2)
    with pytest.raises(ValueError, match=r"padded batch \(T, B, 3\)"):
        model(torch.zeros(5, 2, 4), [5, 5])
    with pytest.raises(ValueError, match="1 lengths for a batch of 2"):
        model(torch.zeros(5, 2, 3), [5])
    with pytest.raises(ValueError, match="does not fit"):
        model(torch.zeros(5, 2, 3), [6, 5])


def test_labelled_batches_cover_every_sequence_once():
    sequences = random_sequences([2, 3, 4, 5, 6, 7, 8])
    labels = torch.arange(7)
    in_order = list(labelled_batches(sequences, labels, 3))
    assert [batch[2].tolist() for batch in in_order] == [[0, 1, 2], [3, 4, 5], [6]]
    shuffled = list(labelled_batches(sequences, labels, 3, torch.Generator().manual_seed(0)))
    again = list(labelled_batches(sequences, labels, 3, torch.Generator().manual_seed(0)))
    seen = torch.cat([batch[2] for batch in shuffled])
    assert sorted(seen.tolist()) == list(range(7)) and seen.tolist() != list(range(7))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(shuffled, again))
    for padded, lengths, batch_labels in shuffled:  # each label travels with its sequence
        for column, label in enumerate(batch_labels.tolist()):
            assert int(lengths[column]) == len(sequences[label])
            assert torch.equal(padded[:lengths[column], column], sequences[label])
    with pytest.raises(ValueError, match="one label per sequence"):
        list(labelled_batches(sequences, labels[:3], 2))


def toy_problem():
    """Two classes told apart by the sign of the mean of a sequence of random length."""
    generator = torch.Generator().manual_seed(5)
    labels = torch.arange(2).repeat(30)
    lengths = torch.randint(2, 9, (60,), generator=generator)
    sequences = [torch.randn(int(length), 2, generator=generator) * 0.5 + (1.0 if label else -1.0)
                 for length, label in zip(lengths, labels)]
    return sequences, labels


def test_train_classifier_learns_and_is_reproducible():
    sequences, labels = toy_problem()

    def trained(seed):
        torch.manual_seed(seed)
        model = SequenceClassifier(nn.GRU(2, 8), 2)
        return model, train_classifier(model, sequences, labels, epochs=8, batch_size=16, lr=0.02, seed=seed)

    model, history = trained(0)
    assert history["epoch"] == list(range(1, 9))
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert torch.equal(predict_classes(model, sequences), labels)
    _, again = trained(0)
    assert again["train_loss"] == history["train_loss"]
    with pytest.raises(ValueError, match="need epochs >= 1"):
        train_classifier(model, sequences, labels, epochs=0)


def test_train_classifier_records_a_score_after_every_epoch_in_eval_mode():
    sequences, labels = toy_problem()
    torch.manual_seed(0)
    model = SequenceClassifier(nn.GRU(2, 8), 2)
    seen = []

    def evaluate(evaluated):
        seen.append((evaluated.training, torch.is_grad_enabled()))
        return float((predict_classes(evaluated, sequences) == labels).float().mean())

    history = train_classifier(model, sequences, labels, epochs=4, batch_size=16, lr=0.02, evaluate=evaluate)
    assert len(history["score"]) == 4 and seen == [(False, False)] * 4 and model.training
    assert history["score"][-1] == 1.0
    torch.manual_seed(0)
    plain = train_classifier(SequenceClassifier(nn.GRU(2, 8), 2), sequences, labels, epochs=4, batch_size=16, lr=0.02)
    assert plain["score"] == [] and plain["train_loss"] == history["train_loss"]  # evaluating changes nothing


# --- comparing two classifiers ------------------------------------------------------------

def test_mcnemar_test_counts_disagreements_and_gives_the_exact_binomial_p():
    first = torch.tensor([True] * 13 + [False] * 6 + [True] * 50)
    second = torch.tensor([False] * 13 + [True] * 6 + [True] * 50)
    result = mcnemar_test(first, second)
    assert (result["first_only"], result["second_only"]) == (13, 6)
    assert result["p"] == pytest.approx(0.1670684814453125)  # 2 * P(X <= 6), X ~ Binomial(19, 1/2)
    assert mcnemar_test(second, first)["p"] == result["p"]
    assert mcnemar_test(first, first) == {"first_only": 0, "second_only": 0, "p": 1.0}
    assert mcnemar_test(torch.tensor([True] * 3), torch.tensor([False] * 3))["p"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="bool"):
        mcnemar_test(first.int(), second)
    with pytest.raises(ValueError, match="bool"):
        mcnemar_test(first, second[:-1])


def test_predict_classes_restores_the_training_mode():
    sequences, labels = toy_problem()
    model = SequenceClassifier(nn.GRU(2, 4), 2)
    model.train()
    predictions = predict_classes(model, sequences, batch_size=7)
    assert predictions.shape == (60,) and predictions.dtype == torch.int64
    assert model.training
    model.eval()
    predict_classes(model, sequences)
    assert not model.training


# --- folds and cross-validation ---------------------------------------------------------

def test_balanced_folds_spread_every_class_evenly():
    labels = torch.tensor([0] * 10 + [1] * 7 + [2] * 5)
    folds = balanced_folds(labels, 5)
    assert folds.shape == labels.shape and set(folds.tolist()) == set(range(5))
    for label in range(3):
        counts = torch.bincount(folds[labels == label], minlength=5)
        assert int(counts.max() - counts.min()) <= 1
    with pytest.raises(ValueError, match="num_folds >= 2"):
        balanced_folds(labels, 1)


def test_cross_validate_l2_prefers_a_penalty_when_features_are_noise():
    generator = torch.Generator().manual_seed(6)
    labels = torch.arange(2).repeat(20)
    features = torch.randn(40, 30, generator=generator)  # nothing to learn: a penalty must help
    best, losses = cross_validate_l2(features, labels, 2, (0.0, 1.0), balanced_folds(labels, 4))
    assert set(losses) == {0.0, 1.0} and best == 1.0
    assert losses[1.0] < losses[0.0]
    with pytest.raises(ValueError, match="non-empty grid"):
        cross_validate_l2(features, labels, 2, (), balanced_folds(labels, 4))
