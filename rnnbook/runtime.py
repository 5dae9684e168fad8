"""One call that makes a notebook reproducible: seeds, threads, warnings, plot style.

Every chapter starts with ``rnnbook.setup_notebook()`` so that all notebooks run
under the same conditions, on a reader's laptop and in CI alike.
"""

import random
import warnings

import numpy as np
import torch

#: The house plotting style (matplotlib rcParams), applied by :func:`use_house_style`.
HOUSE_STYLE = {
    "figure.figsize": (6.0, 3.4),
    "figure.dpi": 80,
    "savefig.dpi": 80,
    "figure.autolayout": True,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "image.cmap": "viridis",
    "svg.hashsalt": "rnnbook",
}


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators with ``seed``."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_device() -> torch.device:
    """Return ``cuda`` when a GPU is visible, otherwise ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def use_house_style() -> None:
    """Apply the book's matplotlib style and make inline figures small PNGs."""
    import matplotlib

    matplotlib.rcParams.update(HOUSE_STYLE)
    try:  # only inside IPython: keep notebook figures as compact PNGs
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        if get_ipython() is not None:
            set_matplotlib_formats("png")
            matplotlib.rcParams.update(HOUSE_STYLE)  # the inline backend resets dpi
    except ImportError:
        pass


def use_short_tracebacks() -> None:
    """Inside IPython, show errors as ``Type: message`` without stack frames.

    The book demonstrates errors on purpose (cells tagged ``raises-exception``); the
    message is the lesson, and frames would print paths of the machine that ran the
    notebook. Run ``%xmode Context`` to get full tracebacks back while debugging.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.InteractiveTB.set_mode(mode="Minimal")  # what %xmode does, without its printout


def setup_notebook(seed: int = 0, threads: int = 1) -> torch.device:
    """Prepare a chapter notebook: seeds, thread count, warnings, plot style, tracebacks.

    One thread is the default because it makes timings and floating-point
    reductions reproducible on a shared 2-core machine; pass ``threads`` to change it.
    Returns the device the chapter should use (``cuda`` if present, else ``cpu``).
    """
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    seed_everything(seed)
    torch.set_num_threads(threads)
    # Library deprecation chatter is not part of the lesson; real warnings stay on.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
    use_house_style()
    use_short_tracebacks()
    return get_device()
