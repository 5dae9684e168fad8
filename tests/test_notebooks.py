"""Notebook hygiene: what strict nbval and the book build silently depend on.

nbval compares outputs, so a notebook saved unexecuted, with stripped outputs, with
memory addresses, or with most cells excluded from comparison would "pass" while
validating nothing. These tests make each of those a failure.
"""

import ast
import json
import re

import nbformat
import pytest

from conftest import NOTEBOOK_DIR, ROOT, chapter_notebooks, toc_files
from rnnbook.portability import NUMBER, TOLERANCE_KEY, cell_tolerance, comparable_texts

MAX_NOTEBOOK_BYTES = 1_000_000
MAX_IMAGE_BYTES = 150_000
MAX_IGNORED_SHARE = 0.10
# Cells compared within a declared numeric tolerance (CONTRIBUTING.md): never so loose
# that a changed result would pass, and the loose ones a minority. A tolerance of kind
# round-off (at most 2% relative, no absolute part, enforced by
# rnnbook.portability.cell_tolerance) only absorbs a rounding flip of a printed digit
# of a value that is deterministic to far more digits; it is not limited in number.
MAX_TOLERANCE_SHARE = 0.25
MAX_RTOL = 0.10
MAX_ATOL = 0.05
# Round-off: a number this small in a compared output must be printed as a bound.
ROUND_OFF = 1e-6
MIN_EXERCISES = 4
SETUP_CALL = "import rnnbook\n\ndevice = rnnbook.setup_notebook()"
NOISE = re.compile(r"0x[0-9a-fA-F]{6,}|/tmp/|ipykernel_\d+|/home/|/Users/|/root/|/work/")
NAME = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")


def code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code" and cell.source.strip()]


def tags(cell):
    return cell.metadata.get("tags", [])


def test_every_notebook_is_in_the_toc_and_every_toc_entry_exists():
    listed = {entry for entry in toc_files() if entry.startswith("notebooks/")}
    present = {f"notebooks/{path.stem}" for path in chapter_notebooks()}
    assert listed == present, f"only in _toc.yml: {listed - present}; only on disk: {present - listed}"
    for entry in toc_files():
        assert any((ROOT / f"{entry}{suffix}").is_file() for suffix in (".md", ".ipynb")), entry


def test_there_are_chapters():
    assert chapter_notebooks(), f"no notebooks found in {NOTEBOOK_DIR}"


def test_notebook_is_valid_named_and_uses_the_python3_kernel(notebook):
    path, nb = notebook
    nbformat.validate(nb)
    assert NAME.match(path.name), f"{path.name}: chapters are named NN_topic.ipynb"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def test_notebook_was_executed_top_to_bottom_in_one_run(notebook):
    path, nb = notebook
    counts = [cell.execution_count for cell in code_cells(nb)]
    assert None not in counts, f"{path.name}: {counts.count(None)} code cells were never executed"
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts} are not 1..n; re-run with `make execute`")


def test_first_code_cell_after_the_launch_cell_is_the_standard_setup(notebook):
    """The launch cell (tools/setup_cell.py, checked in test_launch.py) comes first;
    the chapter's own code starts with the standard setup."""
    path, nb = notebook
    own = [cell for cell in code_cells(nb) if not cell.metadata.get("rnnbook-launch-cell")]
    assert len(own) == len(code_cells(nb)) - 1, f"{path.name}: expected exactly one launch cell"
    assert own[0].source.strip() == SETUP_CALL, (
        f"{path.name}: the first code cell after the launch cell must be exactly:\n{SETUP_CALL}")


def _must_display(source: str) -> bool:
    """Whether a cell's last statement necessarily produces output.

    True for a bare expression that is not a call (a name, an attribute, arithmetic)
    and for a call to ``print``.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return False
    value = tree.body[-1].value
    if isinstance(value, ast.Call):
        return isinstance(value.func, ast.Name) and value.func.id == "print"
    return not isinstance(value, (ast.Constant, ast.Await, ast.Yield))


def test_no_outputs_are_missing(notebook):
    path, nb = notebook
    missing = [index for index, cell in enumerate(nb.cells)
               if cell.cell_type == "code" and _must_display(cell.source) and not cell.outputs]
    assert not missing, f"{path.name}: cells {missing} must show output but have none"
    assert any(cell.outputs for cell in code_cells(nb)), f"{path.name}: no outputs at all"


def test_no_cell_relies_on_a_trailing_semicolon(notebook):
    """nbval executes with store_history=False, so IPython's `;` display suppression
    looks at the wrong cell and the output differs from `make execute`'s. End plotting
    cells with plt.show() instead."""
    path, nb = notebook
    for index, cell in enumerate(code_cells(nb)):
        last = [line for line in cell.source.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        assert not (last and last[-1].rstrip().endswith(";")), (
            f"{path.name}, code cell {index}: ends with ';' (use plt.show())")


def test_errors_only_where_tagged_and_tagged_cells_do_raise(notebook):
    path, nb = notebook
    for index, cell in enumerate(code_cells(nb)):
        errors = [out for out in cell.outputs if out.output_type == "error"]
        if "raises-exception" in tags(cell):
            assert errors, f"{path.name}, code cell {index}: tagged raises-exception but raised nothing"
        else:
            assert not errors, f"{path.name}, code cell {index}: unexpected {errors[0].ename}"


def test_no_stderr_in_outputs(notebook):
    path, nb = notebook
    for index, cell in enumerate(code_cells(nb)):
        for out in cell.outputs:
            assert not (out.output_type == "stream" and out.name == "stderr"), (
                f"{path.name}, code cell {index}: stderr output (a leaked warning?):\n{out.text[:300]}")


def test_no_addresses_or_machine_paths_in_outputs(notebook):
    path, nb = notebook
    for index, cell in enumerate(code_cells(nb)):
        for out in cell.outputs:
            text = json.dumps({key: value for key, value in out.items() if key != "data"})
            text += json.dumps({k: v for k, v in out.get("data", {}).items() if not k.startswith("image/")})
            match = NOISE.search(text)
            assert not match, f"{path.name}, code cell {index}: output contains {match.group(0)!r}"


def test_notebook_and_images_are_small(notebook):
    path, nb = notebook
    assert path.stat().st_size <= MAX_NOTEBOOK_BYTES, f"{path.name}: {path.stat().st_size:,} bytes"
    for index, cell in enumerate(code_cells(nb)):
        for out in cell.outputs:
            for mime, data in out.get("data", {}).items():
                if mime.startswith("image/"):
                    assert len(data) <= MAX_IMAGE_BYTES, f"{path.name}, code cell {index}: {len(data):,}-byte image"


def is_ignored(cell) -> bool:
    return ("nbval-ignore-output" in tags(cell) or "NBVAL_IGNORE_OUTPUT" in cell.source
            or "nbval-skip" in tags(cell) or "NBVAL_SKIP" in cell.source)


def test_ignored_outputs_are_a_small_minority(notebook):
    path, nb = notebook
    cells = code_cells(nb)
    ignored = [cell for cell in cells if is_ignored(cell)]
    assert len(ignored) <= MAX_IGNORED_SHARE * len(cells), (
        f"{path.name}: {len(ignored)} of {len(cells)} code cells escape comparison")


def test_tolerances_are_well_formed_tight_and_few(notebook):
    path, nb = notebook
    cells = code_cells(nb)
    loose = []
    for index, cell in enumerate(cells):
        tolerance = cell_tolerance(cell.metadata)  # raises on a malformed declaration
        if tolerance is None:
            continue
        if cell.metadata[TOLERANCE_KEY]["kind"] != "round-off":  # round-off: one rounded digit, enforced
            loose.append(index)
        where = f"{path.name}, code cell {index}"
        assert not is_ignored(cell), f"{where}: a cell is either ignored or compared within a tolerance"
        assert tolerance.rtol <= MAX_RTOL and tolerance.atol <= MAX_ATOL, (
            f"{where}: tolerance rtol={tolerance.rtol}, atol={tolerance.atol} exceeds the caps "
            f"({MAX_RTOL}, {MAX_ATOL}); redesign the experiment so its result is stable")
        assert any(NUMBER.search(text) for _, text in comparable_texts(cell.outputs)), (
            f"{where}: declares a tolerance but prints no number")
    assert len(loose) <= MAX_TOLERANCE_SHARE * len(cells), (
        f"{path.name}: code cells {loose} ({len(loose)} of {len(cells)}) are compared within a loose tolerance")


def test_no_round_off_digits_in_compared_outputs(notebook):
    """A tiny number's digits are round-off: print it against its bound with
    rnnbook.checks.below (``< 1e-12``), or, for a measured tiny quantity such as a
    vanishing gradient norm, declare a relative tolerance for the cell."""
    path, nb = notebook
    for index, cell in enumerate(code_cells(nb)):
        if is_ignored(cell):
            continue
        tolerance = cell_tolerance(cell.metadata)
        if tolerance is not None and tolerance.rtol > 0:
            continue
        for _, text in comparable_texts(cell.outputs):
            for match in NUMBER.finditer(text):
                value = abs(float(match.group(0)))
                as_bound = text[:match.start()].endswith(("< ", "> "))
                assert value == 0 or value >= ROUND_OFF or as_bound, (
                    f"{path.name}, code cell {index}: prints {match.group(0)!r}, a round-off digit; "
                    "print it with rnnbook.checks.below or declare a relative tolerance")


def test_chapter_has_the_house_shape(notebook):
    path, nb = notebook
    markdown = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "title first"
    assert "In this chapter you will" in markdown, f"{path.name}: learning objectives missing"
    assert "## Summary" in markdown and "## Exercises" in markdown and "## References" in markdown
    exercises = re.findall(r"```\{exercise\}\n:label: (\S+)", markdown)
    assert len(exercises) >= MIN_EXERCISES, f"{path.name}: {len(exercises)} exercises"
    solved = set(re.findall(r"```\{solution(?:-start)?\} (\S+)", markdown))
    assert set(exercises) <= solved, f"{path.name}: exercises without solutions: {set(exercises) - solved}"
    assert markdown.count("```{solution-start}") == markdown.count("```{solution-end}")
    solutions = re.findall(r"```\{solution(?:-start)?\} \S+\n(:class: \S+)?", markdown)
    assert all(option == ":class: dropdown" for option in solutions), "solutions are hidden by default"
    assert all(label.startswith(path.name[:2]) or label.startswith(f"ch{path.name[:2]}")
               for label in exercises), "exercise labels start with the chapter number"
    assert "```{footbibliography}" in markdown, f"{path.name}: no references list"


def test_every_figure_has_a_caption_and_alt_text(notebook):
    """The house guide: every figure says what it shows (CONTRIBUTING.md, Figures)."""
    path, nb = notebook
    for index, cell in enumerate(code_cells(nb)):
        if not any(mime.startswith("image/") for out in cell.outputs for mime in out.get("data", {})):
            continue
        options = cell.metadata.get("mystnb", {})
        caption = options.get("figure", {}).get("caption", "")
        alt = options.get("image", {}).get("alt", "")
        assert len(caption.split()) >= 4, f"{path.name}, code cell {index}: a figure without a caption"
        assert len(alt.split()) >= 4, f"{path.name}, code cell {index}: a figure without alt text"


DIAGRAM_CODE = re.compile(r"\bdef draw_\w+|\bdraw_\w+\(|matplotlib\.patches|\bpatches\.|FancyArrow|Rectangle\(|arrowprops")


def test_diagram_code_is_hidden_alike(notebook):
    """A cell that draws a diagram (a picture of a cell, an unrolled network, a batch
    layout) rather than a result is folded away in every chapter alike: the reader sees
    the figure and can unfold the code. Cells that plot measurements stay visible."""
    path, nb = notebook
    shown = [index for index, cell in enumerate(code_cells(nb))
             if DIAGRAM_CODE.search(cell.source) and "hide-input" not in tags(cell)]
    assert not shown, f"{path.name}: diagram-drawing code cells {shown} need the tag hide-input"
