"""The launch cell (tools/setup_cell.py): chapters open on Colab and Binder.

Every chapter's first code cell installs the book's package where it is missing and
does nothing where it is present. These tests keep the cell in every notebook, keep
it silent under the kernel nbval uses, and keep its install command pointing at the
repository the book's launch buttons name.
"""

import importlib.util
import shlex
import tomllib

import nbformat
import pytest
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
    stale = [path.name for path in chapter_notebooks() if not setup_cell.is_current(
        setup_cell.first_code_cell(nbformat.read(path, as_version=4)),
        setup_cell.source_for(nbformat.read(path, as_version=4)))]
    assert not stale, f"run `python tools/setup_cell.py --write`; first code cell differs in {stale}"
    assert setup_cell.main(["--check"]) == 0


def test_the_launch_cell_has_no_outputs_in_any_notebook():
    for path in chapter_notebooks():
        nb = nbformat.read(path, as_version=4)
        cell = next(cell for cell in nb.cells if cell.cell_type == "code")
        assert not cell.outputs, f"{path.name}: the launch cell printed something"


def test_the_launch_cell_is_removed_from_the_html_but_kept_in_the_notebook():
    """Jupyter Book 1 drops a cell tagged remove-cell from the page; nbval and Colab still run it."""
    for path in chapter_notebooks():
        cell = setup_cell.first_code_cell(nbformat.read(path, as_version=4))
        assert cell.metadata.get(setup_cell.MARKER_KEY), path.name
        assert "remove-cell" in cell.metadata.get("tags", []), f"{path.name}: the launch cell is shown on the page"


def test_the_built_chapter_pages_do_not_show_the_launch_cell():
    """`make book` runs before the tests in `make test` (tests/test_book.py reads the same build)."""
    html = ROOT / "_build" / "html"
    if not (html / "index.html").is_file():
        pytest.fail("no built book in _build/html: run `make book` (make test does)")
    for path in chapter_notebooks():
        page = (html / "notebooks" / f"{path.stem}.html").read_text()
        assert "ModuleNotFoundError" not in page and "git+https://" not in page, f"{path.stem}: launch cell shown"
        assert "setup_notebook" in page, f"{path.stem}: the chapter's own first code cell is missing"


def test_the_student_tool_keeps_the_launch_cell():
    nb = small_notebook()
    setup_cell.insert_launch_cell(nb)
    stripped = student.strip_solutions(nb)
    assert setup_cell.first_code_source(stripped) == setup_cell.source_for(nb)
    for path in chapter_notebooks():
        nb = nbformat.read(path, as_version=4)
        before = setup_cell.first_code_source(nb)
        assert setup_cell.first_code_source(student.strip_solutions(nb)) == before, path.name


def test_write_inserts_before_the_first_code_cell_once_and_updates_in_place():
    nb = small_notebook()
    assert setup_cell.insert_launch_cell(nb)
    assert [cell.cell_type for cell in nb.cells] == ["markdown", "code", "code", "markdown", "code"]
    launch = nb.cells[1]
    assert launch.source == setup_cell.launch_source([]) and launch.outputs == [] and launch.execution_count is None
    assert launch.metadata["tags"] == ["remove-cell"]
    assert not setup_cell.insert_launch_cell(nb), "a second --write must change nothing"
    assert len(nb.cells) == 5
    nbformat.validate(nb)


def test_updating_the_cell_keeps_its_execution_count_and_other_tags():
    """A source-only change: the executed notebook's counts still run 1..n."""
    nb = small_notebook()
    nb.cells.insert(1, nbformat.v4.new_code_cell(
        "try:\n    import rnnbook\nexcept ModuleNotFoundError:\n    %pip install --quiet rnnbook",
        execution_count=1, metadata={"tags": ["some-tag"]}))
    assert setup_cell.insert_launch_cell(nb)
    launch = nb.cells[1]
    assert launch.source == setup_cell.launch_source([]) and launch.execution_count == 1
    assert launch.metadata["tags"] == ["some-tag", "remove-cell"] and launch.metadata[setup_cell.MARKER_KEY]
    assert len(nb.cells) == 5, "the old cell was recognised and updated, not a second one inserted"
    nb.cells[4].source = "from d2l import torch as d2l"
    assert setup_cell.insert_launch_cell(nb) and "d2l==1.0.3" in nb.cells[1].source


def test_write_and_check_on_copies(tmp_path):
    for index in range(2):
        nbformat.write(small_notebook(), tmp_path / f"0{index}_x.ipynb")
    assert setup_cell.main(["--check", "--dir", str(tmp_path)]) == 1
    assert setup_cell.main(["--write", "--dir", str(tmp_path)]) == 0
    written = {path: path.read_bytes() for path in tmp_path.glob("*.ipynb")}
    assert setup_cell.main(["--write", "--dir", str(tmp_path)]) == 0
    assert written == {path: path.read_bytes() for path in tmp_path.glob("*.ipynb")}, "not idempotent"
    assert setup_cell.main(["--check", "--dir", str(tmp_path)]) == 0
    nb = nbformat.read(tmp_path / "00_x.ipynb", as_version=4)
    nb.cells[1].metadata["tags"] = []
    nbformat.write(nb, tmp_path / "00_x.ipynb")
    assert setup_cell.main(["--check", "--dir", str(tmp_path)]) == 1, "a launch cell shown in the HTML is stale"


def test_the_install_command_names_the_books_repository_at_its_version():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert setup_cell.REPOSITORY_URL == config["repository"]["url"]
    assert setup_cell.book_version() == version
    for path in chapter_notebooks():
        source = setup_cell.first_code_source(nbformat.read(path, as_version=4))
        assert f"git+{config['repository']['url']}@v{version}\"" in source, f"{path.name}: not pinned to v{version}"


def test_book_version_reads_the_project_table_only(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.x]\nversion = "9"\n\n[project]\nname = "rnnbook"\nversion = "2.1.0"  # x\n')
    assert setup_cell.book_version(pyproject) == "2.1.0"
    pyproject.write_text('[project]\nname = "rnnbook"\n\n[tool.x]\nversion = "9"\n')
    with pytest.raises(ValueError, match="no version"):
        setup_cell.book_version(pyproject)


def _run_launch_cell(source, module, capsys, torchvision="torchvision"):
    """Run the launch cell as IPython would, with ``module`` in place of rnnbook (and
    ``torchvision`` in place of torchvision), and return its events in order:
    ("print", text) and ("pip", arguments). Nothing is installed."""
    import sys

    from IPython.core.inputtransformer2 import TransformerManager

    source = source.replace("import rnnbook", f"import {module}").replace(
        "import torchvision", f"import {torchvision}")
    python = TransformerManager().transform_cell(source)
    events = []

    class Shell:
        def run_line_magic(self, name, line):
            assert name == "pip", f"the launch cell may only call %pip, not %{name}"
            # IPython expands {name} in a magic's line from the caller's namespace
            events.append(("pip", shlex.split(line.format(**sys._getframe(1).f_globals))))

    def record_print(*args, **kwargs):
        events.append(("print", " ".join(map(str, args))))

    exec(compile(python, "<launch cell>", "exec"), {"get_ipython": lambda: Shell(), "print": record_print})
    return events


def expected_packages():
    """What each chapter installs besides the book's package, found independently of
    setup_cell's patterns: d2l where a code cell imports it (parsed, not grepped), sktime
    where a code cell calls a function of rnnbook that reads sktime's files."""
    import ast
    import inspect

    import rnnbook.sequences
    from IPython.core.inputtransformer2 import TransformerManager

    def names_sktime(function):  # in its code, not in its docstring
        body = ast.parse(inspect.getsource(function)).body[0].body
        if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]
        return any(isinstance(node, ast.Constant) and "sktime" in str(node.value)
                   for statement in body for node in ast.walk(statement))

    needs_sktime = {name for name, function in inspect.getmembers(rnnbook.sequences, inspect.isfunction)
                    if function.__module__ == "rnnbook.sequences" and names_sktime(function)}
    changed = True
    while changed:  # and every function of the module that calls one of those
        callers = {name for name, function in inspect.getmembers(rnnbook.sequences, inspect.isfunction)
                   if function.__module__ == "rnnbook.sequences"
                   and any(f"{other}(" in inspect.getsource(function) for other in needs_sktime)}
        changed = not callers <= needs_sktime
        needs_sktime |= callers
    assert {"japanese_vowels_path", "load_japanese_vowels"} <= needs_sktime
    for name in needs_sktime:
        assert setup_cell.ON_DEMAND["sktime"].search(f"x = {name}('train')"), f"ON_DEMAND misses {name}"

    expected = {}
    for path in chapter_notebooks():
        nb = nbformat.read(path, as_version=4)
        imported, called = set(), set()
        for cell in nb.cells:
            if cell.cell_type != "code" or setup_cell.is_launch_cell(cell):
                continue
            for node in ast.walk(ast.parse(TransformerManager().transform_cell(cell.source))):
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module:
                    imported.add(node.module.split(".")[0])
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    called.add(node.func.id)
        expected[path.stem[:2]] = ["d2l"] * ("d2l" in imported) + ["sktime"] * bool(
            "sktime" in imported or called & needs_sktime)
    return expected


def test_d2l_and_sktime_are_installed_only_in_the_chapters_that_use_them():
    expected = expected_packages()
    found = {path.stem[:2]: setup_cell.needed_packages(nbformat.read(path, as_version=4))
             for path in chapter_notebooks()}
    assert found == expected
    assert found["01"] == ["d2l"] and found["13"] == ["sktime"] and found["02"] == []


@pytest.mark.parametrize("packages", [[], ["d2l"], ["sktime"], ["d2l", "sktime"]])
def test_where_the_package_is_missing_it_says_what_it_installs_then_installs_it(packages, capsys):
    version = setup_cell.book_version()
    events = _run_launch_cell(setup_cell.launch_source(packages), "rnnbook_not_installed_anywhere", capsys)
    kinds = [kind for kind, _ in events]
    assert kinds == ["print", "pip"] + ["pip"] * bool(packages) + ["print"]
    announcement = events[0][1]
    assert f"rnnbook {version}" in announcement and "minute" in announcement
    first = events[1][1]
    assert first[0] == "install" and f"rnnbook[notebooks] @ git+{setup_cell.REPOSITORY_URL}@v{version}" in first
    locked = {line.split(";")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()}
    pins = [word for kind, words in events if kind == "pip" for word in words if "==" in word]
    assert [pin.split("==")[0] for pin in pins] == packages
    for pin in pins:
        assert pin in locked, f"the launch cell installs {pin}, which requirements.txt does not lock"
        assert pin.replace("==", " ") in announcement, f"the announcement does not name {pin}"
    if packages:
        assert events[2][1][:3] == ["install", "--quiet", "--no-deps"]
    assert f"rnnbook {version}" in events[-1][1]


def test_d2l_gets_the_torchvision_that_matches_the_installed_torch_only_where_missing(capsys):
    """The `notebooks` extra does not list torchvision (pip would swap a CPU PyTorch for the
    newest CUDA build to match an unpinned one); chapter 1's cell installs the matching
    release with PyTorch pinned to the installed version, and nothing where it is present."""
    import torch

    assert not any(dependency.startswith("torchvision")
                   for dependency in tomllib.loads((ROOT / "pyproject.toml").read_text())
                   ["project"]["optional-dependencies"]["notebooks"])
    source = setup_cell.launch_source(["d2l"])
    present = _run_launch_cell(source, "rnnbook_not_installed_anywhere", capsys)
    assert [kind for kind, _ in present] == ["print", "pip", "pip", "print"]
    events = _run_launch_cell(source, "rnnbook_not_installed_anywhere", capsys,
                              torchvision="torchvision_not_installed_anywhere")
    assert [kind for kind, _ in events] == ["print", "pip", "pip", "pip", "print"]
    install = events[3][1]
    assert install[:2] == ["install", "--quiet"] and "--no-deps" not in install
    assert install[2:] == [f"torchvision==0.{int(torch.__version__.split('.')[1]) + 15}.*",
                           f"torch=={torch.__version__}"]
    # the rule minor + 15 agrees with the pair the lock holds (torch 2.14.1, torchvision 0.29.1)
    locked = dict(line.split(";")[0].strip().split("==") for line in (ROOT / "requirements.txt").read_text()
                  .splitlines() if line.split(";")[0].strip().startswith(("torch==", "torchvision==")))
    assert locked["torchvision"].split(".")[1] == str(int(locked["torch"].split(".")[1]) + 15), locked


def test_unknown_on_demand_packages_are_refused():
    with pytest.raises(ValueError, match="unknown on-demand packages"):
        setup_cell.launch_source(["tensorflow"])


def test_where_the_package_is_present_nothing_runs(capsys):
    for packages in ([], ["d2l", "sktime"]):
        assert _run_launch_cell(setup_cell.launch_source(packages), "rnnbook", capsys) == []


def test_the_launch_cell_prints_nothing_in_a_kernel(tmp_path):
    """Under the IPython kernel that nbval and `make execute` use, with rnnbook installed."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [setup_cell.new_launch_cell(setup_cell.launch_source(["d2l", "sktime"])),
                nbformat.v4.new_code_cell("print(rnnbook.__name__)")]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert nb.cells[0].outputs == []
    assert nb.cells[1].outputs[0]["text"] == "rnnbook\n"


def test_how_to_use_shows_a_launch_cell_as_it_is():
    """The page quotes the cell of a chapter that needs neither d2l nor sktime."""
    page = (ROOT / "book" / "how_to_use.md").read_text()
    code = [line for line in setup_cell.launch_source([]).splitlines() if not line.startswith("#")]
    assert "\n".join(code) in page, "book/how_to_use.md quotes an outdated launch cell"


def test_binder_installs_the_package_and_cpu_only_torch():
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert "download.pytorch.org/whl/cpu" in post_build
    assert '-e ".[notebooks]"' in post_build and "-c requirements.txt" in post_build
    assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"
