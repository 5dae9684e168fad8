"""The launch cell: the first code cell of every chapter, in one place.

A reader who opens a chapter from its Colab or Binder button, or in a Jupyter that
was not set up with `make lab`, has no `rnnbook` package, and the chapter's
`import rnnbook` would stop with ModuleNotFoundError. The launch cell installs the
package there, and does nothing (and prints nothing) where it is already installed,
so nbval and readers who ran `make lab` see the same outputs as the book.

    python tools/setup_cell.py --write     # insert or update it in notebooks/*.ipynb
    python tools/setup_cell.py --check     # exit 1 if a notebook lacks it or differs
    python tools/setup_cell.py --write --dir /tmp/copies   # the same on other notebooks

The cell goes right before the chapter's first code cell (after the title,
motivation and objectives), with no outputs and no execution count; re-execute the
notebooks afterwards (`make execute`) so their counts run 1..n again.
"""

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"

#: The repository named in _config.yml (repository.url); tests/test_launch.py checks it.
REPOSITORY_URL = "https://github.com/rnnbook/rnnbook"

#: d2l (chapter 1 compares its loader with ours) and sktime (chapter 13 reads data files
#: its wheel ships) are installed without their dependencies, as requirements.txt does:
#: their own pins would downgrade NumPy and pandas. Everything else comes from the
#: package's `notebooks` extra in pyproject.toml.
SOURCE = f"""\
# On Colab, Binder or any Jupyter without the book's package, install it (and what the
# chapters need) from the book's repository; where it is installed this does nothing.
try:
    import rnnbook
except ModuleNotFoundError:
    %pip install --quiet "rnnbook[notebooks] @ git+{REPOSITORY_URL}"
    %pip install --quiet --no-deps d2l==1.0.3 sktime==1.2.0"""

#: Marks the launch cell, so that --write finds it again after its source changed.
MARKER_KEY = "rnnbook-launch-cell"


def is_launch_cell(cell) -> bool:
    return cell.cell_type == "code" and (cell.metadata.get(MARKER_KEY) or cell.source == SOURCE)


def new_launch_cell():
    cell = nbformat.v4.new_code_cell(SOURCE)
    cell.metadata[MARKER_KEY] = True
    cell.execution_count = None
    cell.outputs = []
    return cell


def insert_launch_cell(nb) -> bool:
    """Put the launch cell right before the first code cell of ``nb`` (in place).

    An existing launch cell is updated where it stands if its source differs (its
    outputs and execution count are cleared then); a notebook that already has the
    current cell is left untouched. Returns whether ``nb`` changed.
    """
    present = [index for index, cell in enumerate(nb.cells) if is_launch_cell(cell)]
    if len(present) > 1:
        raise ValueError(f"{len(present)} launch cells (cells {present}); expected at most one")
    if present:
        cell = nb.cells[present[0]]
        first_code = next(index for index, other in enumerate(nb.cells) if other.cell_type == "code")
        if first_code != present[0]:
            raise ValueError(f"the launch cell is cell {present[0]}, after the first code cell {first_code}")
        if cell.source == SOURCE and cell.metadata.get(MARKER_KEY):
            return False
        cell.source, cell.outputs, cell.execution_count = SOURCE, [], None
        cell.metadata[MARKER_KEY] = True
        return True
    first_code = next((index for index, cell in enumerate(nb.cells) if cell.cell_type == "code"), None)
    if first_code is None:
        raise ValueError("the notebook has no code cell to put the launch cell before")
    nb.cells.insert(first_code, new_launch_cell())
    return True


def first_code_source(nb) -> str:
    return next(cell.source for cell in nb.cells if cell.cell_type == "code")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="insert or update the launch cell")
    action.add_argument("--check", action="store_true", help="fail if a notebook lacks the current cell")
    action.add_argument("--print", action="store_true", help="print the cell's source")
    parser.add_argument("--dir", type=Path, default=NOTEBOOK_DIR, help="folder of notebooks (default notebooks/)")
    args = parser.parse_args(argv)
    if args.print:
        print(SOURCE)
        return 0
    paths = sorted(args.dir.glob("*.ipynb"))
    if not paths:
        print(f"no notebooks in {args.dir}", file=sys.stderr)
        return 1
    stale = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if args.check:
            if first_code_source(nb) != SOURCE:
                stale.append(path.name)
            continue
        if insert_launch_cell(nb):
            nbformat.write(nb, path)
            print(f"updated {path}")
    if stale:
        print("without the current launch cell (run `python tools/setup_cell.py --write`): "
              + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
