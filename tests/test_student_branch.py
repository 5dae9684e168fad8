"""The `student` branch that the book's Colab and Binder buttons open (tools/student_branch.sh).

The branch is this commit's tree with every chapter notebook replaced by its student
copy; CI pushes it on every push to main. These tests build it in a throw-away clone
(nothing is pushed) and read the built book's launch links.
"""

import json
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT, chapter_notebooks


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A clone of this repository's HEAD with the working tree's versions of the two tools."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    path = tmp_path_factory.mktemp("student-branch") / "book"
    git("clone", "--quiet", "--no-hardlinks", str(ROOT), str(path), cwd=ROOT)
    for tool in ("student_branch.sh", "student_notebooks.py"):
        shutil.copy(ROOT / "tools" / tool, path / "tools" / tool)
    for notebook in chapter_notebooks():  # the working tree's chapters, committed in the clone
        shutil.copy(notebook, path / "notebooks" / notebook.name)
    git("add", "-A", cwd=path)
    git("-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "--quiet", "--allow-empty",
        "-m", "working tree", cwd=path)
    result = subprocess.run(["bash", "tools/student_branch.sh"], cwd=path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return path


def test_the_branch_differs_from_its_commit_in_the_chapter_notebooks_only(clone):
    changed = set(git("diff", "--name-only", "HEAD", "student", cwd=clone).split())
    assert changed == {f"notebooks/{path.name}" for path in chapter_notebooks()}
    assert git("rev-parse", "student~1", cwd=clone) == git("rev-parse", "HEAD", cwd=clone)
    assert git("status", "--porcelain", cwd=clone) == "", "the caller's working tree changed"
    assert len(git("worktree", "list", cwd=clone).splitlines()) == 1, "the temporary worktree was left behind"


def test_the_branch_holds_the_student_copies_without_solutions(clone):
    for path in chapter_notebooks():
        student = json.loads(git("show", f"student:notebooks/{path.name}", cwd=clone))
        text = "\n".join("".join(cell["source"]) for cell in student["cells"])
        assert "{solution" not in text and "{exercise" not in text, path.name
        assert "### Exercise" in text, f"{path.name}: the exercises are missing"
        first_code = next(cell for cell in student["cells"] if cell["cell_type"] == "code")
        assert "import rnnbook" in "".join(first_code["source"]), f"{path.name}: the launch cell is missing"


def test_the_launch_buttons_open_the_student_branch():
    options = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]["html_theme_options"]
    assert options["repository_branch"] == "student"
    html = ROOT / "_build" / "html"
    if not (html / "index.html").is_file():
        pytest.fail("no built book in _build/html: run `make book` (make test does)")
    for path in chapter_notebooks():
        page = (html / "notebooks" / f"{path.stem}.html").read_text()
        assert f"colab.research.google.com/github/rnnbook/rnnbook/blob/student/notebooks/{path.name}" in page, path.stem
        assert "/blob/main/notebooks/" not in page, f"{path.stem}: a launch link still opens main"


def test_ci_pushes_the_branch_after_the_tests_pass():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    job = workflow["jobs"]["student-branch"]
    assert job["needs"] == "test" and job["permissions"] == {"contents": "write"}
    script = "\n".join(step.get("run", "") for step in job["steps"])
    assert "tools/student_branch.sh student" in script and "git push --force origin student" in script
