"""The one-call notebook setup."""

import random

import matplotlib
import numpy as np
import pytest
import torch

from rnnbook.runtime import HOUSE_STYLE, get_device, seed_everything, setup_notebook


def test_setup_makes_every_generator_repeat():
    def draw():
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    setup_notebook(seed=7)
    first = draw()
    setup_notebook(seed=7)
    assert draw() == first
    setup_notebook(seed=8)
    assert draw() != first


def test_setup_sets_threads_style_and_returns_the_device():
    previous = torch.get_num_threads()
    try:
        device = setup_notebook(threads=1)
        assert torch.get_num_threads() == 1
        assert device == get_device()
        assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")
        assert matplotlib.rcParams["axes.grid"] == HOUSE_STYLE["axes.grid"]
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="threads"):
        setup_notebook(threads=bad)


@pytest.mark.parametrize("bad", [-1, 0.5, None])
def test_bad_seeds_are_refused(bad):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(bad)
