"""Wall-clock timing for the book's speed comparisons.

Timings are noise by nature: notebooks print them in cells excluded from nbval's
comparison and assert only conclusions with a margin noise cannot flip.
"""

import statistics
import time

import torch


def median_seconds(fn, *, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeat`` calls after ``warmup`` calls.

    On a GPU the queue is synchronised before each clock read, so the time covers
    the work and not only its launch.
    """
    if repeat < 1 or warmup < 0:
        raise ValueError(f"need repeat >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_ratio(fn_a, fn_b, *, repeat: int = 11, warmup: int = 1) -> float:
    """Median over ``repeat`` rounds of ``time(fn_a) / time(fn_b)``, calls interleaved.

    Alternating the two functions exposes both to the same background load, which
    makes the ratio far steadier than two separate medians on a shared machine.
    A ratio above 1 means ``fn_b`` is faster.
    """
    if repeat < 1 or warmup < 0:
        raise ValueError(f"need repeat >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    for _ in range(warmup):
        fn_a()
        fn_b()
    ratios = [median_seconds(fn_a, repeat=1, warmup=0) / median_seconds(fn_b, repeat=1, warmup=0)
              for _ in range(repeat)]
    return statistics.median(ratios)


def ratio_at_least(fn_a, fn_b, bound: float, *, attempts: int = 3, repeat: int = 11, warmup: int = 1) -> float:
    """:func:`median_ratio` of ``fn_a`` over ``fn_b``, measured again while it is below ``bound``.

    Returns the first ratio that reaches ``bound``, or the largest of ``attempts``
    measurements. A burst of background load (another notebook, another program)
    slows calls at random and can pull one median below a true ratio of, say, 1.4;
    it does not make a slower function look faster for several measurements in a
    row. So a claim asserted as ``ratio_at_least(a, b, 1.1) > 1.1`` does not fail
    because of a burst, while a claim that is false stays false.
    """
    if attempts < 1:
        raise ValueError(f"need attempts >= 1, got {attempts}")
    best = 0.0
    for _ in range(attempts):
        best = max(best, median_ratio(fn_a, fn_b, repeat=repeat, warmup=warmup))
        if best >= bound:
            break
    return best


def forward_backward(module, inputs):
    """A function that runs one forward and backward pass of ``module`` (which returns
    ``(outputs, state)``) on ``inputs``, with loss ``outputs.sum()`` and the gradients
    cleared first: the workload the book's speed comparisons time."""
    def step():
        module.zero_grad()
        outputs, _ = module(inputs)
        outputs.sum().backward()
    return step
