"""The launch cell: the first code cell of every chapter, generated in one place.

A reader who opens a chapter from its Colab or Binder button, or in a Jupyter that
was not set up with `make lab`, has no `rnnbook` package, and the chapter's
`import rnnbook` would stop with ModuleNotFoundError. The launch cell installs the
package there, at this book's version (the git tag `v<version>`, the version read
from pyproject.toml), says what it installs before it starts, and does nothing (and
prints nothing) where the package is already installed, so nbval and readers who ran
`make lab` see the same outputs as the book. Two packages that only some chapters
need, d2l and sktime, are installed only in those chapters (see ON_DEMAND), so the
cell's source differs from chapter to chapter.

The cell is tagged `remove-cell`: Jupyter Book leaves it out of the HTML pages (a
reader of the website has nothing to install) while the notebooks keep it.

    python tools/setup_cell.py --write     # insert or update it in notebooks/*.ipynb
    python tools/setup_cell.py --check     # exit 1 if a notebook lacks it or differs
    python tools/setup_cell.py --print     # show each chapter's cell
    python tools/setup_cell.py --write --dir /tmp/copies   # the same on other notebooks

A new cell goes right before the chapter's first code cell (after the title,
motivation and objectives), with no outputs and no execution count: re-execute the
notebooks afterwards (`make execute`) so their counts run 1..n again. Updating an
existing cell changes its source and tags only and keeps its execution count, so the
notebooks need no re-execution (where the package is installed the cell prints
nothing, whatever it would install elsewhere).
"""

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"

#: The repository named in _config.yml (repository.url); tests/test_launch.py checks it.
REPOSITORY_URL = "https://github.com/rnnbook/rnnbook"

#: Marks the launch cell, so that --write finds it again after its source changed.
MARKER_KEY = "rnnbook-launch-cell"
#: Jupyter Book 1 removes a cell with this tag (input and output) from the HTML.
HIDE_TAG = "remove-cell"

#: Packages installed only in the chapters whose own code needs them, each with the
#: pattern that finds that need in a code cell. Both are installed without their
#: dependencies, as requirements.txt does: their own pins would downgrade NumPy and
#: pandas. d2l: chapter 1 compares its loader with ours (`from d2l import torch`).
#: sktime: never imported; rnnbook.sequences reads the Japanese Vowels files its wheel
#: ships, through load_japanese_vowels (tests/test_launch.py finds every function of
#: the package that needs sktime and checks that this pattern names it).
ON_DEMAND = {
    "d2l": re.compile(r"^\s*(?:from|import)\s+d2l\b", re.MULTILINE),
    "sktime": re.compile(r"^\s*(?:from|import)\s+sktime\b|\b(?:load_japanese_vowels|japanese_vowels_path)\b",
                         re.MULTILINE),
}


def book_version(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The version in pyproject.toml's [project] table (the tag the cell installs is v<version>)."""
    text = pyproject.read_text(encoding="utf-8")
    table = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    found = table and re.search(r'^version\s*=\s*"([^"]+)"\s*(?:#.*)?$', table.group(1), re.MULTILINE)
    if not found:
        raise ValueError(f"{pyproject}: no version = \"...\" in its [project] table")
    return found.group(1)


def pinned(name: str, requirements: Path = ROOT / "requirements.txt") -> str:
    """``name==version`` as requirements.txt locks it."""
    for line in requirements.read_text(encoding="utf-8").splitlines():
        requirement = line.split(";")[0].split("#")[0].strip()
        if requirement.lower().startswith(f"{name.lower()}=="):
            return requirement
    raise KeyError(f"requirements.txt does not lock {name}")


#: d2l imports torchvision, which the `notebooks` extra no longer lists: an unpinned
#: torchvision made pip replace a reader's CPU build of PyTorch with the newest CUDA
#: build (about 5 GB) to match it. Where torchvision is missing, the cell installs the
#: release that belongs to the installed PyTorch (torchvision 0.(m + 15) goes with PyTorch
#: 2.m, as 0.29 with 2.14 in requirements.txt; tests/test_launch.py checks the rule
#: against the lock) and pins PyTorch to the installed version, so pip keeps it.
TORCHVISION_FOR_D2L = [
    "    try:  # d2l imports torchvision: where it is missing, the release that matches this PyTorch",
    "        import torchvision",
    "    except ModuleNotFoundError:",
    "        import torch",
    "        _torchvision = f\"torchvision==0.{int(torch.__version__.split('.')[1]) + 15}.*\"",
    "        _torch = f\"torch=={torch.__version__}\"",
    '        %pip install --quiet "{_torchvision}" "{_torch}"',
]


def launch_source(packages=(), *, version=None, requirement=None) -> str:
    """The launch cell's source for a chapter that needs ``packages`` (names from ON_DEMAND).

    How long it takes, as the cell says, was measured in fresh Python 3.11 virtual
    environments on this project's 2-core machine: 4.1 s for the package with every
    library of the `notebooks` extra present (as on Colab), 71 s with only a CPU build of
    PyTorch present while the extra still listed torchvision (pip then replaced PyTorch
    with the newest build and its CUDA libraries, about 5 GB, to match the newest
    torchvision; see TORCHVISION_FOR_D2L), and 0.5 s for d2l.

    ``requirement`` replaces what pip installs the book's package from (by default
    ``rnnbook[notebooks] @ git+<repository>@v<version>``; tools/check_install.py points
    it at a local copy).
    """
    unknown = [name for name in packages if name not in ON_DEMAND]
    if unknown:
        raise ValueError(f"unknown on-demand packages {unknown}; expected some of {list(ON_DEMAND)}")
    version = version or book_version()
    requirement = requirement or f"rnnbook[notebooks] @ git+{REPOSITORY_URL}@v{version}"
    pins = [pinned(name) for name in ON_DEMAND if name in packages]
    extra = "".join(f" and {pin.replace('==', ' ')}" for pin in pins)
    lines = [
        "# On Colab, Binder or any Jupyter without the book's package, install it (at this",
        "# book's version) and what this chapter needs; where it is installed, this does nothing.",
        "try:",
        "    import rnnbook",
        "except ModuleNotFoundError:",
        f'    print("Installing rnnbook {version}, the book\'s code, with the libraries its chapters use{extra}:"',
        '          " seconds where they are installed already (as on Colab), minutes where PyTorch must be downloaded.")',
        f'    %pip install --quiet "{requirement}"',
    ]
    if pins:
        lines.append(f"    %pip install --quiet --no-deps {' '.join(pins)}")
    if "d2l" in packages:
        lines += TORCHVISION_FOR_D2L
    lines.append(f'    print("Installed rnnbook {version}.")')
    return "\n".join(lines)


def is_launch_cell(cell) -> bool:
    return cell.cell_type == "code" and bool(
        cell.metadata.get(MARKER_KEY) or "    import rnnbook\nexcept ModuleNotFoundError:" in cell.source)


def needed_packages(nb) -> list:
    """The ON_DEMAND packages that the chapter's own code cells (not the launch cell) need."""
    code = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code" and not is_launch_cell(cell))
    return [name for name, pattern in ON_DEMAND.items() if pattern.search(code)]


def source_for(nb) -> str:
    """The launch cell ``nb`` should have."""
    return launch_source(needed_packages(nb))


def new_launch_cell(source=None):
    cell = nbformat.v4.new_code_cell(launch_source() if source is None else source)
    cell.metadata[MARKER_KEY] = True
    cell.metadata["tags"] = [HIDE_TAG]
    cell.execution_count = None
    cell.outputs = []
    return cell


def is_current(cell, source) -> bool:
    return (cell.source == source and bool(cell.metadata.get(MARKER_KEY))
            and HIDE_TAG in cell.metadata.get("tags", []))


def insert_launch_cell(nb) -> bool:
    """Put the launch cell right before the first code cell of ``nb`` (in place).

    An existing launch cell is updated where it stands if its source or tags differ:
    its execution count is kept (its outputs, which must be empty, are cleared). A
    notebook that already has the current cell is left untouched. Returns whether
    ``nb`` changed.
    """
    present = [index for index, cell in enumerate(nb.cells) if is_launch_cell(cell)]
    if len(present) > 1:
        raise ValueError(f"{len(present)} launch cells (cells {present}); expected at most one")
    source = source_for(nb)
    if present:
        cell = nb.cells[present[0]]
        first_code = next(index for index, other in enumerate(nb.cells) if other.cell_type == "code")
        if first_code != present[0]:
            raise ValueError(f"the launch cell is cell {present[0]}, after the first code cell {first_code}")
        if is_current(cell, source):
            return False
        cell.source, cell.outputs = source, []
        cell.metadata[MARKER_KEY] = True
        tags = cell.metadata.get("tags", [])
        cell.metadata["tags"] = tags + [HIDE_TAG] if HIDE_TAG not in tags else tags
        return True
    first_code = next((index for index, cell in enumerate(nb.cells) if cell.cell_type == "code"), None)
    if first_code is None:
        raise ValueError("the notebook has no code cell to put the launch cell before")
    nb.cells.insert(first_code, new_launch_cell(source))
    return True


def first_code_cell(nb):
    return next(cell for cell in nb.cells if cell.cell_type == "code")


def first_code_source(nb) -> str:
    return first_code_cell(nb).source


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="insert or update the launch cell")
    action.add_argument("--check", action="store_true", help="fail if a notebook lacks the current cell")
    action.add_argument("--print", action="store_true", help="print each notebook's cell")
    parser.add_argument("--dir", type=Path, default=NOTEBOOK_DIR, help="folder of notebooks (default notebooks/)")
    args = parser.parse_args(argv)
    paths = sorted(args.dir.glob("*.ipynb"))
    if not paths:
        print(f"no notebooks in {args.dir}", file=sys.stderr)
        return 1
    stale = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if args.print:
            print(f"# --- {path.name}\n{source_for(nb)}\n")
        elif args.check:
            if not is_current(first_code_cell(nb), source_for(nb)):
                stale.append(path.name)
        elif insert_launch_cell(nb):
            nbformat.write(nb, path)
            print(f"updated {path}")
    if stale:
        print("without the current launch cell (run `python tools/setup_cell.py --write`): "
              + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
