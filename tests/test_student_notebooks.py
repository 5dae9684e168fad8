"""The first step of `make student`: solutions removed, everything else intact.

tests/test_student_copies.py tests the finished copies (plain Markdown, links, maths)."""

import importlib.util

import nbformat

from conftest import ROOT, chapter_notebooks

spec = importlib.util.spec_from_file_location("student_notebooks", ROOT / "tools" / "student_notebooks.py")
student = importlib.util.module_from_spec(spec)
spec.loader.exec_module(student)


def test_solutions_are_removed_and_exercises_kept():
    for path in chapter_notebooks():
        original = nbformat.read(path, as_version=4)
        exercises = sum(cell.source.count("```{exercise}") for cell in original.cells)
        stripped = student.strip_solutions(nbformat.read(path, as_version=4))
        text = "\n".join(cell.source for cell in stripped.cells)
        assert "{solution" not in text, path.name
        assert text.count("```{exercise}") == exercises, path.name
        assert stripped.cells[0].source == original.cells[0].source


def test_gated_and_plain_solutions_in_a_small_notebook():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        md("```{exercise}\n:label: e1\nDo A.\n```\n\n```{solution} e1\n:class: dropdown\nA.\n```"),
        md("```{exercise}\n:label: e2\nDo B.\n```\n\n```{solution-start} e2\n:class: dropdown\n```\nWe compute:"),
        code("answer = 42"),
        md("So it is 42.\n\n```{solution-end}\n```\n\nAfter the solution."),
        code("kept = True"),
    ]
    sources = [cell.source for cell in student.strip_solutions(nb).cells]
    assert sources == ["```{exercise}\n:label: e1\nDo A.\n```", "```{exercise}\n:label: e2\nDo B.\n```",
                       "After the solution.", "kept = True"]
