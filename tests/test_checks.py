"""Round-off printed against its bound."""

import math

import pytest
import torch

from rnnbook.checks import above, below, format_bound


@pytest.mark.parametrize("bound, text", [(1e-12, "1e-12"), (1e-7, "1e-7"), (0.05, "0.05"), (2, "2"),
                                         (5e-3, "0.005"), (3e-5, "3e-5")])
def test_bounds_print_in_their_shortest_form(bound, text):
    assert format_bound(bound) == text


def test_below_and_above_assert_before_they_print():
    assert below(3.2e-16, 1e-12) == "< 1e-12"
    assert below(torch.tensor(4e-8), 1e-6) == "< 1e-6"
    assert above(0.8, 0.1) == "> 0.1"
    with pytest.raises(AssertionError, match="below 1e-12, got 2e-11"):
        below(2e-11, 1e-12)
    with pytest.raises(AssertionError, match="above 0.1"):
        above(0.01, 0.1)


def test_nan_never_passes():
    with pytest.raises(AssertionError):
        below(math.nan, 1.0)
    with pytest.raises(AssertionError):
        above(math.nan, 1.0)


@pytest.mark.parametrize("bad", [0, -1e-3, math.inf, math.nan, "1e-3"])
def test_bad_bounds_are_refused(bad):
    with pytest.raises(ValueError, match="positive finite"):
        below(0.0, bad)


def test_values_must_be_numbers():
    with pytest.raises(TypeError, match="real number"):
        below(torch.zeros(3), 1.0)


def test_tensors_that_require_grad_are_accepted_without_warning(recwarn):
    value = torch.tensor(3e-8, requires_grad=True) * 1.0
    assert below(value, 1e-6) == "< 1e-6"
    assert not recwarn.list
