"""The launch cell (tools/setup_cell.py): chapters open on Colab and Binder.

Every chapter's first code cell installs the book's package where it is missing and
does nothing where it is present. These tests keep the cell in every notebook, keep
it silent under the kernel nbval uses, and keep its install command pointing at the
repository the book's launch buttons name.
"""

import importlib.util
import shlex

import nbformat
import yaml

from conftest import ROOT, chapter_notebooks


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


setup_cell = load_tool("setup_cell")
student = load_tool("student_notebooks")


def small_notebook():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook()
    nb.cells = [md("# Title\n\nIn this chapter you will ..."),
                code("import rnnbook\n\ndevice = rnnbook.setup_notebook()"),
                md("```{exercise}\n:label: e1\nDo A.\n```\n\n```{solution} e1\n:class: dropdown\nA.\n```"),
                code("x = 1")]
    return nb


def test_every_notebook_starts_its_code_with_the_launch_cell():
    stale = [path.name for path in chapter_notebooks()
             if setup_cell.first_code_source(nbformat.read(path, as_version=4)) != setup_cell.SOURCE]
    assert not stale, f"run `python tools/setup_cell.py --write`; first code cell differs in {stale}"


def test_the_launch_cell_has_no_outputs_in_any_notebook():
    for path in chapter_notebooks():
        nb = nbformat.read(path, as_version=4)
        cell = next(cell for cell in nb.cells if cell.cell_type == "code")
        assert not cell.outputs, f"{path.name}: the launch cell printed something"


def test_the_student_tool_keeps_the_launch_cell():
    nb = small_notebook()
    setup_cell.insert_launch_cell(nb)
    stripped = student.strip_solutions(nb)
    assert setup_cell.first_code_source(stripped) == setup_cell.SOURCE
    for path in chapter_notebooks():
        nb = nbformat.read(path, as_version=4)
        before = setup_cell.first_code_source(nb)
        assert setup_cell.first_code_source(student.strip_solutions(nb)) == before, path.name


def test_write_inserts_before_the_first_code_cell_once_and_updates_in_place():
    nb = small_notebook()
    assert setup_cell.insert_launch_cell(nb)
    assert [cell.cell_type for cell in nb.cells] == ["markdown", "code", "code", "markdown", "code"]
    launch = nb.cells[1]
    assert launch.source == setup_cell.SOURCE and launch.outputs == [] and launch.execution_count is None
    assert not setup_cell.insert_launch_cell(nb), "a second --write must change nothing"
    assert len(nb.cells) == 5
    launch.source, launch.execution_count = "# an older launch cell", 1
    assert setup_cell.insert_launch_cell(nb)
    assert nb.cells[1].source == setup_cell.SOURCE and nb.cells[1].execution_count is None
    nbformat.validate(nb)


def test_write_and_check_on_copies(tmp_path):
    for index in range(2):
        nbformat.write(small_notebook(), tmp_path / f"0{index}_x.ipynb")
    assert setup_cell.main(["--check", "--dir", str(tmp_path)]) == 1
    assert setup_cell.main(["--write", "--dir", str(tmp_path)]) == 0
    written = {path: path.read_bytes() for path in tmp_path.glob("*.ipynb")}
    assert setup_cell.main(["--write", "--dir", str(tmp_path)]) == 0
    assert written == {path: path.read_bytes() for path in tmp_path.glob("*.ipynb")}, "not idempotent"
    assert setup_cell.main(["--check", "--dir", str(tmp_path)]) == 0


def test_the_install_command_names_the_books_repository():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert setup_cell.REPOSITORY_URL == config["repository"]["url"]
    assert f"git+{config['repository']['url']}" in setup_cell.SOURCE


def _magic_calls(source, module):
    """Run the launch cell as IPython would, with ``module`` in place of rnnbook, and
    return the line magics it called (nothing is installed)."""
    from IPython.core.inputtransformer2 import TransformerManager

    python = TransformerManager().transform_cell(source.replace("import rnnbook", f"import {module}"))
    calls = []

    class Shell:
        def run_line_magic(self, name, line):
            calls.append((name, line))

    exec(compile(python, "<launch cell>", "exec"), {"get_ipython": lambda: Shell()})
    return calls


def test_where_the_package_is_missing_it_is_installed_from_the_repository():
    calls = _magic_calls(setup_cell.SOURCE, "rnnbook_not_installed_anywhere")
    assert [name for name, _ in calls] == ["pip", "pip"]
    first, second = (shlex.split(line) for _, line in calls)
    assert first[0] == "install" and f"rnnbook[notebooks] @ git+{setup_cell.REPOSITORY_URL}" in first
    assert second[:2] == ["install", "--quiet"] and "--no-deps" in second
    locked = {line.split(";")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()}
    for pin in [word for word in second if "==" in word]:
        assert pin in locked, f"the launch cell installs {pin}, which requirements.txt does not lock"


def test_where_the_package_is_present_nothing_runs():
    assert _magic_calls(setup_cell.SOURCE, "rnnbook") == []


def test_the_launch_cell_prints_nothing_in_a_kernel(tmp_path):
    """Under the IPython kernel that nbval and `make execute` use, with rnnbook installed."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [setup_cell.new_launch_cell(), nbformat.v4.new_code_cell("print(rnnbook.__name__)")]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert nb.cells[0].outputs == []
    assert nb.cells[1].outputs[0]["text"] == "rnnbook\n"


def test_how_to_use_shows_the_launch_cell_as_it_is():
    page = (ROOT / "book" / "how_to_use.md").read_text()
    code = [line for line in setup_cell.SOURCE.splitlines() if not line.startswith("#")]
    assert "\n".join(code) in page, "book/how_to_use.md quotes an outdated launch cell"


def test_binder_installs_the_package_and_cpu_only_torch():
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert "download.pytorch.org/whl/cpu" in post_build
    assert '-e ".[notebooks]"' in post_build and "-c requirements.txt" in post_build
    assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"
