"""Write copies of the chapter notebooks with every exercise solution removed.

Teachers hand these to students. Solutions are either one ```{solution}``` block
inside a markdown cell, or a gated run of cells from ```{solution-start}``` to
```{solution-end}``` (used when a solution contains executed code); both go.

    python tools/student_notebooks.py OUTPUT_DIR
"""

import re
import sys
from pathlib import Path

import nbformat

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
SOLUTION_BLOCK = re.compile(r"```\{solution\}.*?\n```[ \t]*\n?", re.S)
GATE_START = re.compile(r"```\{solution-start\}.*?\n```[ \t]*\n?", re.S)
GATE_END = re.compile(r"```\{solution-end\}[ \t]*\n```[ \t]*\n?", re.S)


def strip_solutions(nb):
    """Return ``nb`` without solutions (modified in place)."""
    kept, inside = [], False
    for cell in nb.cells:
        text = cell.source
        if inside:
            end = GATE_END.search(text) if cell.cell_type == "markdown" else None
            if not end:
                continue  # a cell of the solution
            inside, text = False, text[end.end():]
        if cell.cell_type == "markdown":
            start = GATE_START.search(text)
            if start:
                end = GATE_END.search(text, start.end())
                inside = end is None
                text = text[:start.start()] + (text[end.end():] if end else "")
            text = SOLUTION_BLOCK.sub("", text).strip("\n")
            if not text:
                continue
        cell.source = text
        kept.append(cell)
    if inside:
        raise ValueError("a {solution-start} has no matching {solution-end}")
    nb.cells = kept
    return nb


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(NOTEBOOK_DIR.glob("*.ipynb")):
        nb = strip_solutions(nbformat.read(path, as_version=4))
        nbformat.write(nb, out / path.name)
        print(f"wrote {out / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
