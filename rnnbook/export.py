"""Export the code cells that chapters mark for reuse into package modules.

A chapter teaches a piece of code and marks its cell with a first line
``# export: rnnbook.NAME``. This module collects those cells, in chapter order, into
``rnnbook/NAME.py``, so that later chapters import exactly what an earlier chapter
showed. ``python -m rnnbook.export`` rewrites the modules; ``--check`` only compares
and exits with status 1 when a module and its notebooks have drifted apart (a test
runs it).

The import statements at the top level of the cells are hoisted to the top of the
module, once each, grouped as standard library, third party and ``rnnbook``. A cell
may import from the very module it exports into (a later chapter adding to a module
needs the earlier chapter's names in its own kernel); those imports are dropped.
"""

import argparse
import ast
import re
import sys
import textwrap
from pathlib import Path

import nbformat

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
PACKAGE_DIR = PROJECT_ROOT / "rnnbook"
MARKER = re.compile(r"^#\s*export:\s*rnnbook\.([a-z_][a-z0-9_]*)\s*$")
#: Every generated module starts with this line; hand-written modules never do.
HEADER_START = '"""Code exported from notebooks/'


def exported_cells(notebook: Path) -> list[tuple[str, str]]:
    """``(module, code)`` for each cell of ``notebook`` marked for export, in order.

    The marker line is removed from ``code``. A cell whose first line mentions
    ``export`` but does not match the marker grammar is an error, so a typo cannot
    silently drop code from the package.
    """
    cells = []
    for index, cell in enumerate(nbformat.read(notebook, as_version=4).cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        first, _, rest = cell.source.partition("\n")
        match = MARKER.match(first.strip())
        if match:
            cells.append((match.group(1), rest.strip("\n")))
        elif first.lstrip().startswith("#") and "export" in first.lower():
            raise ValueError(
                f"{notebook.name}, cell {index}: malformed export marker {first!r}; "
                "expected '# export: rnnbook.MODULE'"
            )
    return cells


def split_imports(code: str, module: str) -> tuple[list[str], str]:
    """``(imports, rest)``: the top-level import statements of ``code`` (each as its
    source text, those from ``rnnbook.<module>`` itself left out) and the code without them."""
    lines = code.split("\n")
    imports, removed = [], set()
    for node in ast.parse(code).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            statement = ast.get_source_segment(code, node)
            whole_lines = re.sub(r"\s*#[^\n]*$", "", "\n".join(lines[node.lineno - 1:node.end_lineno]))
            if statement != whole_lines:
                raise ValueError(f"cannot hoist an import that shares its lines with other code: {whole_lines!r}")
            if not (isinstance(node, ast.ImportFrom) and node.module == f"rnnbook.{module}"):
                imports.append(statement)
            removed.update(range(node.lineno - 1, node.end_lineno))
    rest = "\n".join(line for index, line in enumerate(lines) if index not in removed)
    return imports, re.sub(r"\n{3,}", "\n\n\n", rest).strip("\n")


def import_block(imports: list[str]) -> str:
    """Unique import statements in three groups (standard library, third party,
    ``rnnbook``), each sorted with plain ``import`` lines first, as isort would.
    Several ``from M import ...`` statements for one module become one statement,
    its names in the order they first appear."""
    merged: dict[str, dict] = {}  # module -> the names it gives, in first-seen order
    plain: set[str] = set()
    for statement in imports:
        node = ast.parse(statement).body[0]
        if isinstance(node, ast.ImportFrom):
            merged.setdefault(node.module, {}).update(
                dict.fromkeys(alias.name + (f" as {alias.asname}" if alias.asname else "") for alias in node.names))
        else:
            plain.add(statement)
    statements = plain | {render_from_import(module, list(names)) for module, names in merged.items()}
    groups: dict[int, set[str]] = {0: set(), 1: set(), 2: set()}
    for statement in statements:
        top = statement.split()[1].split(".")[0]
        group = 2 if top == "rnnbook" else 0 if top in sys.stdlib_module_names or top == "__future__" else 1
        groups[group].add(statement)

    def order(statement):
        return (statement.startswith("from"), statement.split()[1].lower(), statement)

    return "\n\n".join("\n".join(sorted(group, key=order)) for group in groups.values() if group)


def render_from_import(module: str, names: list[str], width: int = 120) -> str:
    """``from module import a, b``, wrapped in parentheses when longer than ``width``."""
    line, prefix = f"from {module} import {', '.join(names)}", f"from {module} import ("
    return line if len(line) <= width else textwrap.fill(
        ", ".join(names) + ")", width, initial_indent=prefix, subsequent_indent=" " * len(prefix))


def render_modules(notebook_dir: Path = NOTEBOOK_DIR) -> dict[str, str]:
    """Module name -> full source text, built from every notebook in ``notebook_dir``."""
    pieces: dict[str, list[str]] = {}
    sources: dict[str, list[str]] = {}
    for notebook in sorted(notebook_dir.glob("*.ipynb")):
        for module, code in exported_cells(notebook):
            pieces.setdefault(module, []).append(code)
            if notebook.name not in sources.setdefault(module, []):
                sources[module].append(notebook.name)
    modules = {}
    for module, codes in pieces.items():
        origin = ", notebooks/".join(sources[module])
        header = (
            f"{HEADER_START}{origin}.\n\n"
            "Generated by `python -m rnnbook.export` (`make export`) from the cells marked\n"
            f"``# export: rnnbook.{module}``. Edit the notebook, not this file.\n"
            '"""\n'
        )
        imports, bodies = [], []
        for code in codes:
            cell_imports, body = split_imports(code, module)
            imports += cell_imports
            if body:
                bodies.append(body)
        block = import_block(imports)
        modules[module] = header + "\n" + (block + "\n\n\n" if block else "") + "\n\n\n".join(bodies) + "\n"
    return modules


def is_generated(path: Path) -> bool:
    """Whether ``path`` is a module this exporter wrote."""
    return path.read_text().startswith(HEADER_START)


def stale_modules(notebook_dir: Path = NOTEBOOK_DIR, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Names of generated modules whose file differs from what the notebooks export,
    including generated files that no notebook exports any more."""
    modules = render_modules(notebook_dir)
    stale = []
    for name, text in modules.items():
        path = package_dir / f"{name}.py"
        if path.is_file() and not is_generated(path):
            raise ValueError(f"{path} is hand-written; a notebook may not export into it")
        if not path.is_file() or path.read_text() != text:
            stale.append(name)
    for path in sorted(package_dir.glob("*.py")):
        if path.stem not in modules and is_generated(path):
            stale.append(path.stem)
    return sorted(stale)


def write_modules(notebook_dir: Path = NOTEBOOK_DIR, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Write every generated module (and remove orphaned ones); return what changed."""
    changed = stale_modules(notebook_dir, package_dir)
    modules = render_modules(notebook_dir)
    for name in changed:
        target = package_dir / f"{name}.py"
        if name in modules:
            target.write_text(modules[name])
        else:
            target.unlink()
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only report drift; exit 1 if a module is out of date")
    parser.add_argument("--notebook-dir", type=Path, default=NOTEBOOK_DIR)
    parser.add_argument("--package-dir", type=Path, default=PACKAGE_DIR)
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_modules(args.notebook_dir, args.package_dir)
        for name in stale:
            print(f"{args.package_dir.name}/{name}.py is out of date with the notebooks; run `make export`")
        return 1 if stale else 0
    for name in write_modules(args.notebook_dir, args.package_dir):
        print(f"wrote {args.package_dir.name}/{name}.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
