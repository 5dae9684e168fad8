# The labs' grader: checks with points, run from the notebook or the command line.
#
# This file is copied, with the lab's own checks after it, into the first code cell of
# every lab notebook (`make labs`), so a lab needs nothing but PyTorch: it runs offline
# on a laptop and on Colab without installing anything. `python tools/labs.py grade`
# runs the same code on a saved notebook.
#
# A lab registers its checks with `@check_of(question, points, title)`. A check receives
# the namespace holding the student's code and raises `CheckFailed` (or any exception)
# with a message that says what is wrong; returning normally passes it.
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


def questions():
    """The questions of this lab, in order, with their total points."""
    return {question: sum(points for _, points, _ in checks) for question, checks in _CHECKS.items()}


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


def run_checks(question, namespace=None):
    """Run the checks of ``question`` against ``namespace`` (this cell's globals by default).

    Returns a list of ``(title, points, earned, message)``.
    """
    if question not in _CHECKS:
        raise KeyError(f"no question {question!r}; this lab has {', '.join(_CHECKS)}")
    namespace = globals() if namespace is None else namespace
    results = []
    for title, points, function in _CHECKS[question]:
        passed, message = _verdict(function, namespace)
        results.append((title, points, points if passed else 0, message))
    return results


def check(question, namespace=None):
    """Run and print the checks of one question; returns (earned, possible)."""
    results = run_checks(question, namespace)
    earned, possible = sum(r[2] for r in results), sum(r[1] for r in results)
    print(f"{question}: {earned}/{possible} points")
    for title, points, got, message in results:
        print(f"  {'PASS' if got else 'FAIL'} [{points}] {title}" + ("" if got else f"\n         {message}"))
    return earned, possible


def grade(namespace=None, quiet=False):
    """Run every check of the lab and print a score table; returns {question: (earned, possible)}."""
    scores, details = {}, {}
    for question in _CHECKS:
        details[question] = run_checks(question, namespace)
        scores[question] = (sum(r[2] for r in details[question]), sum(r[1] for r in details[question]))
    if not quiet:
        width = max(len(q) for q in scores) + 2
        print(f"{'question':<{width}} points")
        for question, (earned, possible) in scores.items():
            failed = [title for title, _, got, _ in details[question] if not got]
            print(f"{question:<{width}} {earned:>2}/{possible:<2}" + (f"  failed: {'; '.join(failed)}" if failed else ""))
        total = sum(e for e, _ in scores.values()), sum(p for _, p in scores.values())
        print(f"{'total':<{width}} {total[0]:>2}/{total[1]:<2}")
    return scores


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
