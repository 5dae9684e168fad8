"""Shared fixtures and paths for the test suite, and the order in which it runs."""

import json
from pathlib import Path

import nbformat
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
RUN_TIMES = ROOT / "book" / "_run_times.json"


def pytest_collection_modifyitems(config, items):
    """Longest notebooks first, then the unit tests.

    `make test` hands whole files to two workers (`--dist loadfile
    --no-loadscope-reorder`, which keeps this order). A long notebook taken last would
    run alone while the other worker idles; taking the longest first (by the run times
    recorded in book/_run_times.json, a notebook without one counting as the longest)
    lets the short ones and the unit tests fill the gaps at the end. Cells keep their
    order within a notebook (the sort is stable).
    """
    recorded = json.loads(RUN_TIMES.read_text())["notebooks"] if RUN_TIMES.is_file() else {}

    def rank(item):
        path = Path(str(item.path))
        if path.suffix != ".ipynb":
            return (1, 0.0)
        return (0, -recorded.get(path.stem, {}).get("seconds", float("inf")))

    items.sort(key=rank)


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Unit tests run on one thread, like the notebooks: with two test workers on a
    2-core machine, PyTorch's default thread pool oversubscribes the cores and small
    operations become many times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def chapter_notebooks() -> list[Path]:
    """Every chapter notebook, in file-name order."""
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def toc_files() -> list[str]:
    """Every file listed in _toc.yml (without suffix), in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


@pytest.fixture(params=chapter_notebooks(), ids=lambda path: path.stem)
def notebook(request):
    """(path, parsed notebook) for each chapter notebook."""
    return request.param, nbformat.read(request.param, as_version=4)
