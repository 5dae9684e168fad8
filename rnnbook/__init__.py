"""rnnbook: the reusable code of the course book *Recurrent Neural Networks, from
Scratch to PyTorch*.

Two kinds of module live here:

* hand-written utilities that are not the subject of any chapter
  (:mod:`rnnbook.runtime` for notebook setup, :mod:`rnnbook.data` for the corpus,
  :mod:`rnnbook.export` for the notebook-to-package export);
* modules generated from the cells that chapters mark with ``# export: rnnbook.NAME``
  (for example :mod:`rnnbook.language`, from chapter 1). Edit those in the notebook
  and run ``make export``; a test fails when the two drift apart.
"""

from rnnbook.runtime import get_device, seed_everything, setup_notebook

__all__ = ["get_device", "seed_everything", "setup_notebook"]
__version__ = "1.1.0"
