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
