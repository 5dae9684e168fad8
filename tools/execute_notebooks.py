"""Re-execute chapter notebooks in place, so their committed outputs are fresh.

This is the execution CI repeats with ``pytest --nbval``: the same kernel (the
current environment's Python), the same working directory (``notebooks/``) and a
clean kernel per notebook. It prints each notebook's wall-clock time, which is how
the book's per-chapter budget is checked.

    python tools/execute_notebooks.py                     # every notebook
    python tools/execute_notebooks.py notebooks/01_*.ipynb
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
CELL_TIMEOUT_S = 600


def execute(path: Path) -> float:
    """Execute ``path`` top to bottom in a fresh kernel, write it back, return seconds."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    notebook.metadata.pop("widgets", None)
    nbformat.write(notebook, path)
    return seconds


def main(argv: list[str]) -> int:
    paths = [Path(arg) for arg in argv] or sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    total = 0.0
    for path in paths:
        seconds = execute(path)
        total += seconds
        print(f"{seconds:7.1f} s  {path.name}", flush=True)
    print(f"{total:7.1f} s  total ({len(paths)} notebooks)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
