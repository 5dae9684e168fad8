"""rnnbook.tasks and rnnbook.experiments (chapter 11): synthetic tasks, parameter
formulas, the multi-seed runner and the task training loop."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnbook.experiments import (GATE_BLOCKS, RecurrentReadout, matching_hidden_size,
                                 recurrent_parameter_count, run_seeds, steps_to_threshold, train_on_task)
from rnnbook.training import count_parameters
from rnnbook.tasks import adding_problem, copy_task


# --- the adding problem -------------------------------------------------------------

@pytest.mark.parametrize("batch_size, length", [(1, 2), (5, 3), (7, 30), (4, 51)])
def test_adding_problem_shapes_and_two_marker_invariant(batch_size, length):
    inputs, targets = adding_problem(batch_size, length, torch.Generator().manual_seed(0))
    assert inputs.shape == (length, batch_size, 2) and targets.shape == (batch_size,)
    assert inputs.dtype == targets.dtype == torch.float32
    values, markers = inputs[..., 0], inputs[..., 1]
    assert ((markers == 0) | (markers == 1)).all()
    assert torch.equal(markers.sum(dim=0), torch.full((batch_size,), 2.0))
    assert torch.equal(markers[: length // 2].sum(dim=0), torch.ones(batch_size))  # one per half
    assert ((values >= 0) & (values <= 1)).all()
    torch.testing.assert_close(targets, (values * markers).sum(dim=0))


def test_adding_problem_covers_both_halves_and_has_baseline_one_sixth():
    inputs, targets = adding_problem(200_000, 10, torch.Generator().manual_seed(1))
    markers = inputs[..., 1]
    # every position of each half gets marked, about equally often
    counts = markers.sum(dim=1) / 200_000
    torch.testing.assert_close(counts, torch.full((10,), 1 / 5), atol=0.01, rtol=0)
    assert abs(float(targets.mean()) - 1.0) < 0.005
    assert abs(float(((targets - 1.0) ** 2).mean()) - 1 / 6) < 0.003  # always predicting 1
    assert float(((targets - targets.mean()) ** 2).mean()) > 0.16  # no constant does better


def test_adding_problem_is_deterministic_with_a_seeded_generator():
    first = adding_problem(8, 12, torch.Generator().manual_seed(7))
    second = adding_problem(8, 12, torch.Generator().manual_seed(7))
    other = adding_problem(8, 12, torch.Generator().manual_seed(8))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], other[0])


@pytest.mark.parametrize("batch_size, length", [(0, 10), (4, 1), (4, 0), (2.0, 10), (4, "10")])
def test_adding_problem_refuses_bad_sizes(batch_size, length):
    with pytest.raises(ValueError):
        adding_problem(batch_size, length)


# --- the copy task ------------------------------------------------------------------

@pytest.mark.parametrize("S, delay, K", [(1, 1, 2), (2, 20, 4), (3, 5, 8)])
def test_copy_task_layout(S, delay, K):
    B = 6
    inputs, targets = copy_task(B, S, delay, K, torch.Generator().manual_seed(0))
    T = 2 * S + delay
    assert inputs.shape == (T, B, K + 2) and inputs.dtype == torch.float32
    assert targets.shape == (S, B) and targets.dtype == torch.int64
    assert torch.equal(inputs.sum(dim=-1), torch.ones(T, B))  # one-hot
    tokens = inputs.argmax(dim=-1)
    assert torch.equal(tokens[:S], targets) and (targets < K).all() and (targets >= 0).all()
    assert (tokens[S + delay - 1] == K + 1).all()  # the go marker
    rest = torch.cat([tokens[S:S + delay - 1], tokens[S + delay:]])
    assert (rest == K).all()  # blanks everywhere else


def test_copy_task_symbols_are_uniform_and_deterministic():
    inputs, targets = copy_task(40_000, 2, 3, 4, torch.Generator().manual_seed(2))
    shares = torch.bincount(targets.flatten(), minlength=4) / targets.numel()
    torch.testing.assert_close(shares, torch.full((4,), 0.25), atol=0.01, rtol=0)
    again = copy_task(40_000, 2, 3, 4, torch.Generator().manual_seed(2))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)


@pytest.mark.parametrize("args", [(0, 2, 3, 4), (4, 0, 3, 4), (4, 2, 0, 4), (4, 2, 3, 1), (4, 2, 3, 2.5)])
def test_copy_task_refuses_bad_sizes(args):
    with pytest.raises(ValueError):
        copy_task(*args)


# --- parameter counts ---------------------------------------------------------------

def test_parameter_formula_matches_numel_for_random_modules():
    generator = torch.Generator().manual_seed(0)
    for _ in range(25):
        I, H, L = (int(torch.randint(1, high, (1,), generator=generator)) for high in (20, 20, 4))
        bidirectional, bias = (bool(torch.randint(2, (1,), generator=generator)) for _ in range(2))
        for kind in ("RNN", "GRU", "LSTM"):
            module = getattr(nn, kind)(I, H, num_layers=L, bidirectional=bidirectional, bias=bias)
            assert recurrent_parameter_count(kind, I, H, L, bidirectional, bias) == count_parameters(module)


def test_parameter_formula_by_hand_and_ratios():
    # one layer: G * H * (I + H + 2)
    assert recurrent_parameter_count("RNN", 3, 2) == 2 * (3 + 2 + 2)
    assert recurrent_parameter_count("LSTM", 3, 2) == 4 * 2 * (3 + 2 + 2)
    assert recurrent_parameter_count("GRU", 3, 2, bias=False) == 3 * 2 * (3 + 2)
    # a second bidirectional layer reads 2H inputs
    assert recurrent_parameter_count("RNN", 3, 2, num_layers=2, bidirectional=True) == 2 * 14 + 2 * 2 * (4 + 2 + 2)
    for I, H, L in [(1, 1, 1), (28, 64, 3), (7, 5, 2)]:
        gru, lstm = (recurrent_parameter_count(kind, I, H, L, True) for kind in ("GRU", "LSTM"))
        assert 4 * gru == 3 * lstm


@pytest.mark.parametrize("args", [("LSTMCell", 3, 4), ("lstm", 3, 4), ("GRU", 0, 4), ("GRU", 3, 0), ("RNN", 3, 4, 0)])
def test_parameter_formula_refuses_bad_input(args):
    with pytest.raises(ValueError):
        recurrent_parameter_count(*args)


def test_matching_hidden_size_is_the_closest_to_the_budget():
    for kind in GATE_BLOCKS:
        for budget in (500, 26_000, 123_457):
            H = matching_hidden_size(kind, 28, 28, budget)

            def total(size):
                return recurrent_parameter_count(kind, 28, size) + 28 * (size + 1)

            assert all(abs(total(H) - budget) <= abs(total(other) - budget) for other in range(1, 2 * H + 2))
    assert matching_hidden_size("LSTM", 28, 28, 26_000) == 64
    assert matching_hidden_size("GRU", 28, 28, 26_000) == 75
    with pytest.raises(ValueError):
        matching_hidden_size("GRU", 28, 28, 0)


# --- the readout model --------------------------------------------------------------

def test_recurrent_readout_reads_the_last_steps():
    torch.manual_seed(0)
    for layer in (nn.RNN(3, 5), nn.LSTM(3, 5), nn.GRU(3, 5)):
        model = RecurrentReadout(layer, output_size=4, num_outputs=2)
        inputs = torch.randn(7, 6, 3)
        outputs = model(inputs)
        assert outputs.shape == (2, 6, 4)
        torch.testing.assert_close(outputs, model.head(layer(inputs)[0][-2:]))


def test_recurrent_readout_refuses_bad_input():
    with pytest.raises(ValueError, match="time-major"):
        RecurrentReadout(nn.GRU(3, 5, batch_first=True), 1)
    with pytest.raises(ValueError, match="time-major"):
        RecurrentReadout(nn.LSTM(3, 5, bidirectional=True), 1)
    with pytest.raises(ValueError):
        RecurrentReadout(nn.GRU(3, 5), 0)
    model = RecurrentReadout(nn.GRU(3, 5), 1, num_outputs=4)
    with pytest.raises(ValueError, match=r"\(T, B, I\)"):
        model(torch.randn(3, 2, 3))  # fewer steps than outputs
    with pytest.raises(ValueError):
        model(torch.randn(6, 3))


# --- the multi-seed runner ----------------------------------------------------------

def test_run_seeds_reports_every_seed_and_the_median():
    scores = {1: 3.0, 2: 100.0, 3: 1.0}
    result = run_seeds(lambda seed: {"score": scores[seed], "seed": seed}, [1, 2, 3], score="score")
    assert result["seeds"] == [1, 2, 3] and result["scores"] == [3.0, 100.0, 1.0]
    assert [run["seed"] for run in result["runs"]] == [1, 2, 3]
    assert result["median"] == 3.0  # the outlier cannot move it; the mean would be 34.7
    even = run_seeds(lambda seed: {"score": float(seed)}, [1, 2, 3, 4], score="score")
    assert even["median"] == 2.5


def test_run_seeds_seeds_the_global_generators():
    result = run_seeds(lambda seed: {"draw": float(torch.rand(()))}, [4, 5, 6], score="draw")
    torch.manual_seed(5)
    assert result["scores"][1] == float(torch.rand(()))
    assert result["scores"][0] != result["scores"][1]


@pytest.mark.parametrize("seeds, run, message", [
    ([], lambda seed: {"x": 1.0}, "at least one seed"),
    ([1, 1], lambda seed: {"x": 1.0}, "distinct"),
    ([0], lambda seed: {"y": 1.0}, "key 'x'"),
    ([0], lambda seed: 1.0, "key 'x'"),
    ([0], lambda seed: {"x": math.nan}, "NaN"),
])
def test_run_seeds_refuses_bad_input(seeds, run, message):
    with pytest.raises(ValueError, match=message):
        run_seeds(run, seeds, score="x")


# --- the task training loop ---------------------------------------------------------

def adding_loss(predictions, targets):
    return F.mse_loss(predictions[0, :, 0], targets)


def test_train_on_task_records_history_and_learns_a_short_adding_problem():
    torch.manual_seed(0)
    model = RecurrentReadout(nn.GRU(2, 16), 1)
    test = adding_problem(256, 6, torch.Generator().manual_seed(99))
    history = train_on_task(model, lambda generator: adding_problem(32, 6, generator), adding_loss, test,
                            steps=150, lr=0.02, eval_every=50)
    assert history["step"] == [0, 50, 100, 150] and len(history["test_loss"]) == 4
    assert history["seconds"][0] == 0 and all(b > a for a, b in zip(history["seconds"], history["seconds"][1:]))
    assert history["solved_at"] is None
    assert history["test_loss"][-1] < 0.5 * history["test_loss"][0]
    assert history["test_loss"][-1] < 1 / 12  # below what remembering one value could reach


def test_train_on_task_is_reproducible_and_uses_the_seed_for_batches():
    def train(seed):
        torch.manual_seed(0)  # the same initial weights every time
        model = RecurrentReadout(nn.LSTM(2, 4), 1)
        test = adding_problem(16, 5, torch.Generator().manual_seed(1))
        return train_on_task(model, lambda generator: adding_problem(8, 5, generator), adding_loss, test,
                             steps=10, eval_every=5, seed=seed)["test_loss"]
    assert train(3) == train(3)
    assert train(3) != train(4)


@pytest.mark.parametrize("option", [{"steps": 0}, {"eval_every": 0}, {"lr": 0.0}, {"clip": -1.0}])
def test_train_on_task_refuses_bad_options(option):
    model = RecurrentReadout(nn.RNN(2, 3), 1)
    test = adding_problem(4, 4)
    settings = {"steps": 2, **option}
    with pytest.raises(ValueError):
        train_on_task(model, lambda generator: adding_problem(4, 4, generator), adding_loss, test, **settings)


def test_train_on_task_scores_the_final_model_when_steps_do_not_divide():
    torch.manual_seed(0)
    model = RecurrentReadout(nn.GRU(2, 4), 1)
    test = adding_problem(16, 5, torch.Generator().manual_seed(1))
    history = train_on_task(model, lambda generator: adding_problem(8, 5, generator), adding_loss, test,
                            steps=12, eval_every=5)
    assert history["step"] == [0, 5, 10, 12]
    with torch.no_grad():
        assert history["test_loss"][-1] == float(adding_loss(model(test[0]), test[1]))


def test_train_on_task_stops_once_solved_and_says_when():
    torch.manual_seed(0)
    model = RecurrentReadout(nn.GRU(2, 16), 1)
    test = adding_problem(256, 6, torch.Generator().manual_seed(99))
    history = train_on_task(model, lambda generator: adding_problem(32, 6, generator), adding_loss, test,
                            steps=2000, lr=0.02, eval_every=10, stop_below=0.05)
    assert history["solved_at"] == history["step"][-1] < 2000
    assert history["test_loss"][-1] < 0.05 <= min(history["test_loss"][:-1])
    with pytest.raises(ValueError, match="stop_below"):
        train_on_task(model, lambda generator: adding_problem(4, 4, generator), adding_loss, test, steps=2,
                      stop_below=0.0)


def test_set_update_bias_sets_the_total_z_bias_of_every_layer_and_direction():
    from rnnbook.experiments import set_update_bias

    gru = set_update_bias(nn.GRU(3, 5, num_layers=2, bidirectional=True), 1.5)
    for suffix in ("_l0", "_l0_reverse", "_l1", "_l1_reverse"):
        total = getattr(gru, f"bias_ih{suffix}") + getattr(gru, f"bias_hh{suffix}")
        assert torch.equal(total[5:10], torch.full((5,), 1.5))
    with pytest.raises(ValueError, match="nn.GRU"):
        set_update_bias(nn.LSTM(3, 5), 1.0)
    with pytest.raises(ValueError, match="bias=False"):
        set_update_bias(nn.GRU(3, 5, bias=False), 1.0)


def test_steps_to_threshold():
    history = {"step": [0, 25, 50, 75], "test_loss": [0.2, 0.05, 0.009, 0.001]}
    assert steps_to_threshold(history, 0.01) == 50
    assert steps_to_threshold(history, 0.3) == 0
    assert steps_to_threshold(history, 0.0001) is None
