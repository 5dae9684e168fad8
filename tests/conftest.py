"""Shared fixtures and paths for the test suite."""

from pathlib import Path

import nbformat
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"


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
