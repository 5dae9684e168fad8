"""Printing round-off against its bound, so that outputs hold on every CPU.

A relative error of ``6e-11`` on one machine is ``9e-11`` on another: round-off depends
on the kernels a CPU runs. What a check establishes is that the error lies below a
bound, so that is what the book prints. Every verification cell reports round-off
through these two helpers (a test forbids tiny numbers printed any other way):

>>> print(f"relative error {below(3.2e-16, 1e-12)}")
relative error < 1e-12

Each helper asserts its claim before returning the text, so a check that fails
stops the notebook instead of printing a false bound.
"""

import math
import re


def format_bound(bound: float) -> str:
    """``1e-12`` for 1e-12, ``0.05`` for 0.05, ``2`` for 2: the shortest faithful form."""
    if not (isinstance(bound, (int, float)) and math.isfinite(bound) and bound > 0):
        raise ValueError(f"a bound must be a positive finite number, got {bound!r}")
    text = f"{bound:g}"
    return re.sub(r"e([-+])0*(\d)", lambda m: f"e{'-' if m.group(1) == '-' else ''}{m.group(2)}", text)


def _as_float(value) -> float:
    if hasattr(value, "detach"):  # a tensor, possibly part of an autograd graph
        value = value.detach()
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"expected a real number or a one-element tensor, got {value!r:.80}") from error


def below(value, bound: float) -> str:
    """Assert ``value < bound`` and return ``"< bound"`` for printing.

    ``value`` is a number or a one-element tensor (an error, a difference, a norm);
    NaN fails. Use it for anything whose digits are round-off.
    """
    number, text = _as_float(value), format_bound(bound)
    if not number < bound:  # also catches NaN
        raise AssertionError(f"expected a value below {text}, got {number:.3g}")
    return f"< {text}"


def above(value, bound: float) -> str:
    """Assert ``value > bound`` and return ``"> bound"`` for printing.

    For the other side of a check: a deliberate bug produces an error far above
    round-off, and the book shows that the check would have caught it.
    """
    number, text = _as_float(value), format_bound(bound)
    if not number > bound:
        raise AssertionError(f"expected a value above {text}, got {number:.3g}")
    return f"> {text}"
