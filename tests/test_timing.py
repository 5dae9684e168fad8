"""rnnbook.timing."""

import time

import pytest

from rnnbook.timing import median_ratio, median_seconds


def test_median_seconds_calls_warmup_plus_repeat_times_and_measures():
    calls = []

    def work():
        calls.append(1)
        time.sleep(0.01)

    seconds = median_seconds(work, repeat=3, warmup=2)
    assert len(calls) == 5
    assert 0.009 < seconds < 0.5


@pytest.mark.parametrize("repeat, warmup", [(0, 1), (1, -1)])
def test_median_seconds_refuses_bad_counts(repeat, warmup):
    with pytest.raises(ValueError):
        median_seconds(lambda: None, repeat=repeat, warmup=warmup)


def test_median_ratio_tells_slow_from_fast():
    slow, fast = (lambda: time.sleep(0.02)), (lambda: time.sleep(0.005))
    assert median_ratio(slow, fast, repeat=3) > 2
    assert median_ratio(fast, slow, repeat=3) < 0.5
    with pytest.raises(ValueError):
        median_ratio(slow, fast, repeat=0)
