"""The package and the notebooks never drift apart."""

import nbformat
import pytest

from rnnbook import export


def test_package_matches_the_notebooks():
    assert export.stale_modules() == [], "run `make export` and commit the result"


def test_every_generated_module_is_imported_code_from_a_notebook():
    modules = export.render_modules()
    assert "language" in modules
    for name in modules:
        assert export.is_generated(export.PACKAGE_DIR / f"{name}.py")
    for hand_written in ("__init__", "runtime", "data", "export"):
        assert not export.is_generated(export.PACKAGE_DIR / f"{hand_written}.py")


def write_notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, path)


@pytest.fixture
def project(tmp_path):
    notebooks, package = tmp_path / "notebooks", tmp_path / "pkg"
    notebooks.mkdir()
    package.mkdir()
    (package / "helpers.py").write_text('"""Hand-written."""\n')
    return notebooks, package


def test_export_round_trip_detects_drift_and_orphans(project):
    notebooks, package = project
    write_notebook(notebooks / "01_a.ipynb", "# export: rnnbook.demo\ndef f():\n    return 1", "x = f()")
    write_notebook(notebooks / "02_b.ipynb", "# export: rnnbook.demo\ndef g():\n    return 2")
    assert export.stale_modules(notebooks, package) == ["demo"]
    assert export.write_modules(notebooks, package) == ["demo"]
    text = (package / "demo.py").read_text()
    assert "def f():" in text and "def g():" in text and "x = f()" not in text
    assert text.index("def f") < text.index("def g")
    assert "notebooks/01_a.ipynb, notebooks/02_b.ipynb" in text
    assert export.stale_modules(notebooks, package) == []

    (package / "demo.py").write_text(text.replace("return 1", "return 42"))  # edited by hand
    assert export.stale_modules(notebooks, package) == ["demo"]

    for path in notebooks.iterdir():  # no notebook exports `demo` any more
        write_notebook(path, "y = 1")
    assert export.write_modules(notebooks, package) == ["demo"]
    assert not (package / "demo.py").exists()
    assert (package / "helpers.py").exists()  # hand-written modules are never touched


def test_malformed_marker_is_an_error(project):
    notebooks, package = project
    write_notebook(notebooks / "01_a.ipynb", "# export rnnbook.demo\ndef f(): pass")
    with pytest.raises(ValueError, match="malformed export marker"):
        export.render_modules(notebooks)


def test_notebooks_may_not_overwrite_hand_written_modules(project):
    notebooks, package = project
    write_notebook(notebooks / "01_a.ipynb", "# export: rnnbook.helpers\ndef f(): pass")
    with pytest.raises(ValueError, match="hand-written"):
        export.stale_modules(notebooks, package)


def test_check_command_reports_drift(project, capsys):
    notebooks, package = project
    write_notebook(notebooks / "01_a.ipynb", "# export: rnnbook.demo\nZ = 1")
    dirs = ["--notebook-dir", str(notebooks), "--package-dir", str(package)]
    assert export.main(["--check", *dirs]) == 1
    assert "demo.py is out of date" in capsys.readouterr().out
    assert export.main(dirs) == 0
    assert export.main(["--check", *dirs]) == 0
