# What the labs' checks share: points, the refusal of shortcuts, and messages for the student.
#
# `tools/labs.py` puts this file, with a lab's own checks after it, into each of the
# lab's Otter-Grader test files (one per question; each check becomes a test case worth
# its points). Otter runs them from the notebook (`grader.check("NAME")`) and when the
# teacher grades (`otter run`, `otter grade`, `tools/labs.py grade`).
#
# A lab registers its checks with `@check_of(question, points, title)`. A check receives
# the namespace holding the student's code and raises `CheckFailed` (or any exception)
# with a message that says what is wrong; returning normally passes it. `_verdict` turns
# what a check raised into that message: the TODO of a stub, the check's own words, or
# the student's exception with the line that raised it.
import os as _os
import sys as _sys
import traceback as _traceback

import torch


class CheckFailed(AssertionError):
    """A check's verdict, with a message for the student."""


_CHECKS = {}  # question -> list of (title, points, function), in the order registered
_GRADER_FILE = _traceback.extract_stack(limit=1)[0].filename  # this cell's, to tell the student's frames apart
_TORCH_DIR = _os.path.dirname(torch.__file__) + _os.sep
_FORBIDDEN = []  # (owner, attribute name, label): what would do a question's work for the student


def forbid(owner, name, label):
    """During the checks, code outside the grader and PyTorch may not call ``owner.name``.

    A lab forbids what would answer its questions in one call (``torch.lstm_cell`` in
    the LSTM lab, ``torch.autograd.grad`` in the backpropagation lab); the checks
    themselves, and PyTorch's own code, still use it.
    """
    _FORBIDDEN.append((owner, name, label))


class _Guard:
    """Swap every forbidden function (and the student's own names for it) for a sentry."""

    def __init__(self, namespace):
        self.namespace, self.undo = namespace, []

    def __enter__(self):
        for owner, name, label in _FORBIDDEN:
            original = getattr(owner, name)
            sentry = _sentry(original, label)
            self.undo.append((owner, name, original))
            setattr(owner, name, sentry)
            for key, value in list(self.namespace.items()):
                if value is original:
                    self.undo.append((self.namespace, key, original))
                    self.namespace[key] = sentry
        return self

    def __exit__(self, *exc):
        for owner, name, original in reversed(self.undo):
            if owner is self.namespace:
                owner[name] = original
            else:
                setattr(owner, name, original)
        return False


def _sentry(original, label):
    def sentry(*args, **kwargs):
        caller = _sys._getframe(1).f_code.co_filename
        if caller != _GRADER_FILE and not caller.startswith(_TORCH_DIR):
            raise CheckFailed(f"your code calls {label}, which does the work of this question: "
                              "write it with basic tensor operations")
        return original(*args, **kwargs)

    return sentry


def check_of(question, points, title):
    """Register the decorated function as a check of ``question`` worth ``points``."""
    if not (isinstance(points, int) and points > 0):
        raise ValueError(f"points must be a positive integer, got {points!r}")

    def register(function):
        _CHECKS.setdefault(question, []).append((title, points, function))
        return function

    return register


def _verdict(function, namespace):
    """Run one check: (passed, message)."""
    try:
        with _Guard(namespace), torch.random.fork_rng(devices=[]):  # the student's random state is left alone
            function(namespace)
    except NotImplementedError as error:
        return False, f"not implemented yet ({error})" if str(error) else "not implemented yet"
    except CheckFailed as error:
        return False, str(error)
    except Exception as error:  # the student's code raised: show where
        frames = _traceback.extract_tb(error.__traceback__)
        where = next((f"line {frame.lineno} of {frame.name}" for frame in reversed(frames)
                      if frame.filename != _GRADER_FILE and frame.name in namespace), None)
        message = f"{type(error).__name__}: {error}"
        return False, message + (f" (raised at {where})" if where else "")
    return True, ""


# Helpers the checks share.

def call(namespace, name, *args, **kwargs):
    """Call the student's function ``name`` from ``namespace``."""
    function = namespace.get(name)
    if not callable(function):
        raise CheckFailed(f"{name} is not defined: run its cell first")
    return function(*args, **kwargs)


def expect_tensor(value, shape, what):
    """Raise unless ``value`` is a tensor of ``shape``."""
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{what} should be a tensor of shape {tuple(shape)}, got a {type(value).__name__}")
    if tuple(value.shape) != tuple(shape):
        raise CheckFailed(f"{what} should have shape {tuple(shape)}, got {tuple(value.shape)}")


def largest_difference(a, b):
    """max |a - b| as a float (both tensors of one shape)."""
    return float((a.detach().double() - b.detach().double()).abs().max())


def diagnose(got, expected, mistakes, what, tolerance=1e-9):
    """Raise a message naming the mistake when ``got`` differs from ``expected``.

    ``mistakes`` maps a hint (what to check) to the tensor that mistake would produce
    (a dict, or a list of pairs when one hint has several forms); the first one ``got``
    matches names the problem, otherwise the message gives the largest difference and
    every hint.
    """
    difference = largest_difference(got, expected)
    if difference <= tolerance:
        return
    pairs = list(mistakes.items()) if isinstance(mistakes, dict) else list(mistakes)
    for hint, wrong in pairs:
        if wrong.shape == got.shape and largest_difference(got, wrong) <= tolerance:
            raise CheckFailed(f"{what} (largest difference {difference:.2g}): {hint}")
    hints = "; ".join(dict.fromkeys(hint for hint, _ in pairs)) or \
        "the checks before this one (a function it calls may be wrong), then the formula in the instructions"
    raise CheckFailed(f"{what} (largest difference {difference:.2g}). Things to check: {hints}")


def expect_error(error_type, function, *args, what, **kwargs):
    """Raise unless ``function(*args)`` raises ``error_type`` (a NotImplementedError passes through)."""
    try:
        function(*args, **kwargs)
    except NotImplementedError:
        raise
    except error_type as error:
        if not str(error):
            raise CheckFailed(f"{what}: raise {error_type.__name__} with a message that says what was expected")
        return str(error)
    except Exception as error:
        raise CheckFailed(f"{what}: expected a {error_type.__name__}, got {type(error).__name__}: {error}")
    raise CheckFailed(f"{what}: expected a {error_type.__name__}, but nothing was raised")
