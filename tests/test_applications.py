"""rnnbook.applications (chapter 14): forecasting windows, baselines and the GRU
forecaster; the date-normalisation task, its encoder-decoder and exposure-bias metrics."""

import datetime
import math

import pytest
import torch
from torch import nn

from rnnbook.applications import (DATE_STYLES, FIRST_DATE, LAST_DATE, SOURCE_ALPHABET, START, TARGET_ALPHABET,
                                  TARGET_LENGTH, DateTranslator, accuracy_after_wrong_input, after_first_error,
                                  block_bootstrap_indices, character_accuracy, cycle_naive_forecast, date_pairs,
                                  decode_targets, encode_sources, encode_targets, exact_match, load_sunspots,
                                  make_windows, mean_absolute_error, naive_forecast, render_date, train_forecaster,
                                  train_translator)
from rnnbook.gru import GRURegressor




# --- forecasting -----------------------------------------------------------------------

def test_load_sunspots_is_the_documented_series():
    years, values = load_sunspots()
    assert years.tolist() == list(range(1700, 2009))
    assert values.dtype == torch.float64 and values.shape == (309,)
    assert float(values.min()) >= 0 and 150 < float(values.max()) < 250


def test_make_windows_cuts_inputs_and_targets_at_each_origin():
    series = torch.arange(30.0, dtype=torch.float64)
    inputs, targets = make_windows(series, [4, 10, 27], input_length=4, horizon=3)
    assert inputs.shape == (3, 4, 1) and targets.shape == (3, 3)
    assert inputs.dtype == targets.dtype == torch.float32
    assert inputs[1, :, 0].tolist() == [6, 7, 8, 9] and targets[1].tolist() == [10, 11, 12]
    assert targets[2].tolist() == [27, 28, 29]  # the last origin whose targets fit


@pytest.mark.parametrize("origins, message", [([3, 10], r"origins must lie in \[4, 27\]"),
                                              ([28], r"origins must lie in \[4, 27\]"),
                                              ([], "at least one origin")])
def test_make_windows_rejects_windows_that_do_not_fit(origins, message):
    with pytest.raises(ValueError, match=message):
        make_windows(torch.arange(30.0), origins, input_length=4, horizon=3)


def test_naive_and_cycle_naive_forecasts():
    series = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    assert naive_forecast(series, [3, 5], 2).tolist() == [[3.0, 3.0], [5.0, 5.0]]
    # period 3 from origin 6: y6 <- y3, y7 <- y4, y8 <- y5, y9 <- y3 (two seasons back)
    assert cycle_naive_forecast(series, [6], 4, 3).tolist() == [[4.0, 5.0, 6.0, 4.0]]
    periodic = torch.sin(2 * math.pi * torch.arange(60.0, dtype=torch.float64) / 7)
    origins = range(14, 30)
    exact = torch.stack([periodic[o:o + 20] for o in origins])
    torch.testing.assert_close(cycle_naive_forecast(periodic, origins, 20, 7), exact)
    with pytest.raises(ValueError, match="every origin >= period"):
        cycle_naive_forecast(series, [2], 2, 3)


def test_block_bootstrap_indices_are_runs_of_consecutive_rows():
    indices = block_bootstrap_indices(23, 5, 300, torch.Generator().manual_seed(0))
    assert indices.shape == (300, 23) and indices.dtype == torch.int64
    assert int(indices.min()) >= 0 and int(indices.max()) <= 22
    runs = indices[:, :20].reshape(300, 4, 5)  # the first four complete runs of each resample
    assert torch.equal(runs - runs[..., :1], torch.arange(5).expand(300, 4, 5))
    assert len({tuple(row.tolist()) for row in indices}) > 250  # resamples differ
    assert set(indices[:, 0].tolist()) == set(range(19))  # every start position is drawn
    again = block_bootstrap_indices(23, 5, 300, torch.Generator().manual_seed(0))
    assert torch.equal(again, indices)
    assert torch.equal(block_bootstrap_indices(4, 4, 2, torch.Generator()), torch.arange(4).expand(2, 4))
    with pytest.raises(ValueError, match="block <= count"):
        block_bootstrap_indices(4, 5, 10, torch.Generator())


def test_mean_absolute_error():
    assert mean_absolute_error(torch.tensor([[1.0, 2.0]]), torch.tensor([[2.0, 0.0]])) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="differ in shape"):
        mean_absolute_error(torch.zeros(2, 3), torch.zeros(3, 2))


def test_train_forecaster_fits_a_sine_and_records_scores():
    series = torch.sin(torch.arange(200.0) * 2 * math.pi / 12)
    inputs, targets = make_windows(series, range(24, 190), input_length=24, horizon=3)
    torch.manual_seed(1)
    model = GRURegressor(1, 16, output_size=3)  # chapter 10's model, as chapter 14 uses it
    with torch.no_grad():
        before = float(((model(inputs) - targets) ** 2).mean())
    history = train_forecaster(model, inputs, targets, steps=150, lr=1e-2, seed=1, evaluate_every=50,
                               evaluate=lambda m: float(((m(inputs) - targets) ** 2).mean()))
    assert history["step"] == [50, 100, 150]
    assert history["score"][-1] < 0.1 * before
    assert model.training  # evaluation switched back to training mode
    with pytest.raises(ValueError, match="one target row per window"):
        train_forecaster(model, inputs, targets[:-1], steps=1)


def test_train_forecaster_minimises_the_loss_it_is_given():
    # targets that are 0 most of the time and 10 now and then: the mean is pulled up, the median is not
    inputs = torch.zeros(40, 3, 1)
    targets = torch.zeros(40, 1)
    targets[::5] = 10.0
    fitted = {}
    for loss in ("mse", "mae"):
        model = nn.Sequential(nn.Flatten(), nn.Linear(3, 1))
        train_forecaster(model, inputs, targets, steps=400, batch_size=40, lr=0.05, loss=loss)
        fitted[loss] = float(model[1].bias.detach())
    assert fitted["mse"] == pytest.approx(2.0, abs=0.3) and abs(fitted["mae"]) < 0.3
    with pytest.raises(ValueError, match="loss must be"):
        train_forecaster(model, inputs, targets, steps=1, loss="huber")


# --- the date task ---------------------------------------------------------------------

def test_every_style_renders_what_its_strptime_pattern_reads_back():
    for date in (datetime.date(1969, 1, 1), datetime.date(2000, 2, 29), datetime.date(2068, 12, 31),
                 datetime.date(1999, 9, 9)):
        for style, pattern in enumerate(DATE_STYLES.values()):
            text = render_date(date, style)
            assert datetime.datetime.strptime(text, pattern).date() == date, (text, pattern)
    assert render_date(datetime.date(2021, 3, 3), 0) == "3 march 2021"
    assert render_date(datetime.date(2021, 3, 3), 3) == "3 mar 21"
    with pytest.raises(ValueError, match="style must be 0 to 4"):
        render_date(datetime.date(2021, 3, 3), 5)


def test_date_pairs_are_reproducible_and_train_and_test_dates_are_disjoint():
    sources, targets = date_pairs(2000, torch.Generator().manual_seed(0))
    again = date_pairs(2000, torch.Generator().manual_seed(0))
    assert (sources, targets) == again
    test_sources, test_targets = date_pairs(2000, torch.Generator().manual_seed(0), split="test")
    assert not set(targets) & set(test_targets)
    for target in targets + test_targets:
        date = datetime.date.fromisoformat(target)
        assert FIRST_DATE <= date <= LAST_DATE
    offsets = {datetime.date.fromisoformat(t).toordinal() - FIRST_DATE.toordinal() for t in test_targets}
    assert all(offset % 10 == 0 for offset in offsets)
    assert all(set(source) <= set(SOURCE_ALPHABET) for source in sources + test_sources)
    only_dotted, _ = date_pairs(20, torch.Generator().manual_seed(3), styles=[2])
    assert all(source.count(".") == 2 for source in only_dotted)
    with pytest.raises(ValueError, match="split 'train' or 'test'"):
        date_pairs(5, torch.Generator(), split="validation")


def test_encoding_round_trips_and_rejects_unknown_characters():
    sources, lengths = encode_sources(["3 mar 21", "march 3, 2021"])
    assert sources.shape == (13, 2) and lengths.tolist() == [8, 13]
    assert sources.dtype == torch.int64 and int(sources[8:, 0].abs().sum()) == 0  # padding is 0
    assert "".join(SOURCE_ALPHABET[int(i) - 1] for i in sources[:8, 0]) == "3 mar 21"
    targets = encode_targets(["2021-03-03", "1999-12-31"])
    assert targets.shape == (TARGET_LENGTH, 2)
    assert decode_targets(targets) == ["2021-03-03", "1999-12-31"]
    with pytest.raises(ValueError, match="not in the alphabet"):
        encode_sources(["3 März 2021"])
    with pytest.raises(ValueError, match="10 characters"):
        encode_targets(["2021-3-3"])


def test_translator_teacher_forcing_equals_a_fused_lstm_and_greedy_is_consistent():
    torch.manual_seed(2)
    model = DateTranslator(hidden_size=12, embedding_size=6)
    written, iso = date_pairs(16, torch.Generator().manual_seed(4))
    sources, lengths = encode_sources(written)
    targets = encode_targets(iso)
    logits = model(sources, lengths, targets)
    assert logits.shape == (TARGET_LENGTH, 16, len(TARGET_ALPHABET))
    fused = nn.LSTM(6, 12)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(fused, f"{name}_l0").copy_(getattr(model.decoder, name))
    h, c = model.encode(sources, lengths)
    previous = torch.cat([torch.full_like(targets[:1], START), targets[:-1]])
    outputs, _ = fused(model.target_embedding(previous), (h[None], c[None]))
    torch.testing.assert_close(model.head(outputs), logits)
    greedy = model.greedy_decode(sources, lengths)
    assert greedy.shape == (TARGET_LENGTH, 16)
    assert torch.equal(model(sources, lengths, greedy).argmax(dim=-1), greedy)
    # the encoder reads each date up to its own length: one at a time gives the same state
    for b in (0, 7):
        h_alone, _ = model.encode(sources[:lengths[b], b:b + 1], lengths[b:b + 1])
        torch.testing.assert_close(h_alone[0], h[b])


def test_translator_rejects_bad_input():
    model = DateTranslator(hidden_size=4, embedding_size=3)
    sources, lengths = encode_sources(["3 mar 21", "mar 3 2021"])
    with pytest.raises(ValueError, match=r"int64 source indices \(T, B\)"):
        model.encode(sources.float(), lengths)
    with pytest.raises(ValueError, match="1 lengths for a batch of 2"):
        model.encode(sources, lengths[:1])
    with pytest.raises(ValueError, match=r"expected targets \(S, 2\)"):
        model(sources, lengths, torch.zeros(10, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        model.greedy_decode(sources, lengths, steps=0)
    with pytest.raises(ValueError, match="input_noise"):
        model(sources, lengths, torch.zeros(10, 2, dtype=torch.long), input_noise=1.0)


def test_input_noise_replaces_inputs_by_wrong_characters_only():
    torch.manual_seed(5)
    model = DateTranslator(hidden_size=8, embedding_size=4)
    written, iso = date_pairs(64, torch.Generator().manual_seed(1))
    sources, lengths = encode_sources(written)
    targets = encode_targets(iso)
    seen = []
    hook = model.target_embedding.register_forward_hook(lambda module, args, output: seen.append(args[0].clone()))
    clean = model(sources, lengths, targets)
    assert torch.equal(model(sources, lengths, targets, input_noise=0.0, generator=torch.Generator()), clean)
    seen.clear()
    model(sources, lengths, targets, input_noise=0.3, generator=torch.Generator().manual_seed(2))
    hook.remove()
    inputs = torch.stack(seen[1:])  # (S - 1, B): what steps 1 to S - 1 read instead of targets[:-1]
    changed = inputs != targets[:-1]
    assert 0.2 < float(changed.float().mean()) < 0.4  # about the requested share, and every change is wrong
    assert bool((inputs >= 0).all() and (inputs < len(TARGET_ALPHABET)).all())


def test_accuracy_after_wrong_input_feeds_truth_then_a_wrong_character_then_its_own_outputs():
    class Copycat(DateTranslator):
        """A decoder that predicts the character it reads plus one: wrong inputs propagate."""

        def decode_step(self, previous, state):
            logits = torch.full((len(previous), len(TARGET_ALPHABET)), -1.0)
            logits[torch.arange(len(previous)), (previous + 1) % len(TARGET_ALPHABET)] = 1.0
            return logits, state

    model = Copycat(hidden_size=4, embedding_size=3)
    sources, lengths = encode_sources(["3 mar 21"])
    targets = torch.tensor([[0], [1], [2], [3], [4]])  # each character the previous one plus one
    # after a wrong input at position 1 (2 instead of 1) it predicts 3, 4, 5 for targets 2, 3, 4
    assert accuracy_after_wrong_input(model, sources, lengths, targets, 1) == 0.0
    with pytest.raises(ValueError, match="position must be"):
        accuracy_after_wrong_input(model, sources, lengths, targets, 4)


def test_train_translator_learns_a_single_style_and_records_evaluations():
    torch.manual_seed(3)
    model = DateTranslator(hidden_size=32, embedding_size=16)

    def make_batch(generator):
        written, iso = date_pairs(32, generator, styles=[2])  # dd.mm.yyyy only
        return (*encode_sources(written), encode_targets(iso))

    test_written, test_iso = date_pairs(200, torch.Generator().manual_seed(9), split="test", styles=[2])
    test_sources, test_lengths = encode_sources(test_written)
    test_targets = encode_targets(test_iso)

    def evaluate(m):
        return {"accuracy": character_accuracy(m.greedy_decode(test_sources, test_lengths), test_targets),
                "training": m.training}

    history = train_translator(model, make_batch, steps=120, lr=2e-2, seed=3, evaluate=evaluate, evaluate_every=60)
    assert history["step"] == [60, 120] and len(history["train_loss"]) == 2
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert [e["training"] for e in history["evaluations"]] == [False, False] and model.training
    assert history["evaluations"][-1]["accuracy"] > 0.8
    with pytest.raises(ValueError, match="need steps >= 1"):
        train_translator(model, make_batch, steps=0)
    noisy = DateTranslator(hidden_size=32, embedding_size=16)
    noisy_history = train_translator(noisy, make_batch, steps=2, seed=3, input_noise=0.2)
    assert len(noisy_history["train_loss"]) == 1


# --- metrics -----------------------------------------------------------------------------

def test_accuracies_and_exact_match():
    targets = torch.tensor([[1, 2], [3, 4], [5, 6]])
    predictions = torch.tensor([[1, 2], [3, 0], [5, 6]])
    assert character_accuracy(predictions, targets) == pytest.approx(5 / 6)
    assert exact_match(predictions, targets) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="differ"):
        exact_match(predictions, targets[:2])
    with pytest.raises(ValueError, match="differ"):
        character_accuracy(predictions, targets.T)


def test_after_first_error_counts_only_positions_after_a_free_running_mistake():
    targets = torch.tensor([[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4]])  # (S=4, B=3)
    free = torch.tensor([[1, 0, 1], [2, 2, 2], [0, 0, 3], [0, 4, 4]])  # errors: b0 at s2, b1 at s0, b2 none
    forced = torch.tensor([[1, 0, 1], [2, 2, 2], [0, 3, 3], [4, 0, 4]])
    result = after_first_error(free, forced, targets)
    # counted positions: b0 s3; b1 s1, s2, s3 -> 4 of 12
    assert result["positions"] == pytest.approx(4 / 12)
    assert result["free_running"] == pytest.approx(2 / 4)  # b0 s3 wrong; b1: s1 right, s2 wrong, s3 right
    assert result["teacher_forced"] == pytest.approx(3 / 4)  # b0 s3 right; b1: s1 right, s2 right, s3 wrong
    clean = after_first_error(targets, targets, targets)
    assert clean["positions"] == 0.0 and math.isnan(clean["free_running"])
    with pytest.raises(ValueError, match="one shape"):
        after_first_error(free, forced[:3], targets)
