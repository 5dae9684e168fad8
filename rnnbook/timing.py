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
    makes the ratio far steadier than two separate medians on a shared machine; the
    order within a round alternates too (a then b, b then a), so neither function
    always runs on the caches the other left. A ratio above 1 means ``fn_b`` is faster.
    """
    if repeat < 1 or warmup < 0:
        raise ValueError(f"need repeat >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    for _ in range(warmup):
        fn_a()
        fn_b()
    ratios = []
    for round_ in range(repeat):
        if round_ % 2:
            seconds_b = median_seconds(fn_b, repeat=1, warmup=0)
            seconds_a = median_seconds(fn_a, repeat=1, warmup=0)
        else:
            seconds_a = median_seconds(fn_a, repeat=1, warmup=0)
            seconds_b = median_seconds(fn_b, repeat=1, warmup=0)
        ratios.append(seconds_a / seconds_b)
    return statistics.median(ratios)


def ratio_at_least(fn_a, fn_b, bound: float, *, attempts: int = 3, repeat: int = 11, warmup: int = 1) -> float:
    """:func:`median_ratio` of ``fn_a`` over ``fn_b``, decided by a majority of up to
    ``attempts`` (odd) independent measurements against ``bound``.

    Measurements stop as soon as a majority lies on one side of ``bound`` (two of
    three agree), and the median of the measurements made is returned, so the value
    is at least ``bound`` exactly when most measurements were. A burst of background
    load (another notebook, another program) slows calls at random and can pull one
    median below a true ratio of, say, 1.4, but it does not decide the vote alone; and
    unlike keeping the best of several tries, the returned value is not biased towards
    passing. A claim is asserted as ``ratio_at_least(a, b, 1.1) > 1.1``.
    """
    if attempts < 1 or attempts % 2 == 0:
        raise ValueError(f"need an odd number of attempts >= 1, got {attempts}")
    majority = attempts // 2 + 1
    ratios = []
    while len(ratios) < attempts:
        ratios.append(median_ratio(fn_a, fn_b, repeat=repeat, warmup=warmup))
        above = sum(ratio >= bound for ratio in ratios)
        if above >= majority or len(ratios) - above >= majority:
            break
    return statistics.median(ratios)


def forward_backward(module, inputs):
    """A function that runs one forward and backward pass of ``module`` (which returns
    ``(outputs, state)``) on ``inputs``, with loss ``outputs.sum()`` and the gradients
    cleared first: the workload the book's speed comparisons time."""
    def step():
        module.zero_grad()
        outputs, _ = module(inputs)
        outputs.sum().backward()
    return step
