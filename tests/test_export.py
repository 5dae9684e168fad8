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


def test_imports_are_hoisted_grouped_and_never_from_the_module_itself(project):
    notebooks, package = project
    write_notebook(notebooks / "01_a.ipynb",
                   "# export: rnnbook.demo\nimport torch\n\n\ndef f():\n    return torch.zeros(1)",
                   "# export: rnnbook.demo\nfrom rnnbook.runtime import seed_everything  # a comment\n"
                   "from rnnbook.demo import f  # the cell above, for this kernel\nimport math\n"
                   "from typing import (List,\n                    Tuple)\n\n\ndef g() -> List:\n    return [f(), math.pi]")
    export.write_modules(notebooks, package)
    text = (package / "demo.py").read_text()
    body = text.split('"""\n', 1)[1]
    assert body.startswith("\nimport math\nfrom typing import List, Tuple\n\n"
                           "import torch\n\nfrom rnnbook.runtime import seed_everything\n\n\ndef f():")
    assert "rnnbook.demo" not in body and "# a comment" not in body
    assert "\n\n\ndef g() -> List:" in body


def test_an_import_sharing_its_line_cannot_be_hoisted(project):
    notebooks, package = project
    write_notebook(notebooks / "01_a.ipynb", "# export: rnnbook.demo\nimport math; X = math.pi")
    with pytest.raises(ValueError, match="shares its lines"):
        export.render_modules(notebooks)


def test_generated_modules_import_only_at_the_top():
    import ast

    for name, text in export.render_modules().items():
        body = ast.parse(text).body
        kinds = [isinstance(node, (ast.Import, ast.ImportFrom)) for node in body[1:]]  # after the docstring
        assert kinds == sorted(kinds, reverse=True), f"rnnbook/{name}.py has an import after other code"


def test_from_imports_of_one_module_merge_into_one_statement(project):
    notebooks, package = project
    write_notebook(notebooks / "01_a.ipynb", "# export: rnnbook.demo\nfrom torch import nn\n\nA = nn",
                   "# export: rnnbook.demo\nfrom torch import Tensor, nn\nfrom torch import nn as neural\n\nB = Tensor")
    export.write_modules(notebooks, package)
    text = (package / "demo.py").read_text()
    assert "\nfrom torch import nn, Tensor, nn as neural\n" in text and text.count("from torch import") == 1
    long_names = [f"name_{index:02d}" for index in range(20)]
    wrapped = export.render_from_import("rnnbook.training", long_names)
    assert all(len(line) <= 120 for line in wrapped.splitlines()) and len(wrapped.splitlines()) > 1
    assert wrapped.replace("\n", " ").replace("(", "").replace(")", "").split() == \
        ["from", "rnnbook.training", "import", *[f"{name}," for name in long_names[:-1]], long_names[-1]]
