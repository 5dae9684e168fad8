"""Shared fixtures and paths for the test suite."""

from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"


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
