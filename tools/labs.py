"""Lab notebooks from the lab sources in labs/, graded by Otter-Grader.

A lab source (``labs/labNN_*.py``) is a Python file cut into cells by ``# %% [KIND]``
lines; it holds the reference solutions and the checks:

- ``[markdown]``: text, each line behind ``# ``;
- ``[given]``: code the student runs and does not change (imports, helpers);
- ``[answer] NAME``: the cell where the student writes question NAME. The reference
  code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes, in the student
  copy, ``raise NotImplementedError(...)`` with the ``# TODO:`` line above it as message;
- ``[code]``: a cell for the student to run (``grader.check("NAME")``, ``grader.check_all()``);
- ``[checks]``: the checks (``@check_of``); with ``labs/grader.py`` before them they make
  one Otter-Grader test file per question (``tests/LAB/NAME.py``, one test case per check);
- ``[mistakes]``: ``MISTAKES = [...]``, planted common mistakes that
  ``tests/test_labs.py`` and ``selftest`` prove the checks catch (never in a notebook).

    python tools/labs.py build [OUT]            per lab, OUT/LAB.ipynb and OUT/tests/LAB/ (the student's),
                                                OUT/solutions/LAB.ipynb (default _build/labs)
    python tools/labs.py autograder [OUT]       OUT/autograder/LAB.zip, Otter's autograder configuration
                                                (otter generate), for otter run, otter grade or Gradescope
    python tools/labs.py grade NOTEBOOK... [--csv FILE] [--timeout S] [--lab NAME] [--autograders DIR]
                                                grade saved notebooks with Otter, each in its own process,
                                                and cross-check the answer cells run alone
    python tools/labs.py selftest               per lab: reference, stub and planted mistakes

Building needs nothing but Python 3.10+; the rest needs PyTorch and Otter-Grader.
"""

import argparse
import base64
import csv
import json
import re
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB_DIR = ROOT / "labs"
GRADER = LAB_DIR / "grader.py"
CELL = re.compile(r"^# %% \[(markdown|given|answer|code|checks|mistakes)\](?: (\w+))?[ \t]*$", re.M)
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
SETUP_TITLE = "# @title Setup: run this cell first, do not edit it"
OTTER = "otter-grader==7.0.0"  # the version in requirements.txt; the setup cell installs it where it is missing
HOW_TO_WORK = """**How to work.** Run the setup cell first (it is folded): it loads
[Otter-Grader](https://otter-grader.readthedocs.io), installing it where it is missing (as on
Colab), and this lab's checks. For each question, replace the `raise NotImplementedError(...)`
line in the answer cell with your code, run the cell, then run the `grader.check(...)` cell below
it: it says that every check passed, or what to look at. `grader.check_all()` at the end runs
every check again. The teacher's grader runs the same checks, each question worth the points its
heading gives, and counts what the question's `grader.check` cell shows when the notebook runs from
top to bottom: fix an answer in its own cell, not in a cell below its check."""


@dataclass
class Cell:
    kind: str
    source: str
    question: str | None = None


@dataclass
class Lab:
    name: str
    path: Path
    cells: list = field(default_factory=list)

    def of_kind(self, kind):
        return [cell for cell in self.cells if cell.kind == kind]

    @property
    def title(self) -> str:
        first = self.of_kind("markdown")[0].source.splitlines()[0]
        return first.lstrip("# ").strip()

    @property
    def questions(self) -> list:
        return [cell.question for cell in self.of_kind("answer")]

    def answer(self, question) -> str:
        return next(cell.source for cell in self.of_kind("answer") if cell.question == question)

    def checks_source(self) -> str:
        return "\n\n".join(cell.source for cell in self.of_kind("checks"))

    def given_source(self) -> str:
        return "\n\n".join(cell.source for cell in self.of_kind("given"))

    def grader_source(self) -> str:
        """The grader and this lab's checks, as one piece of Python."""
        return f"{GRADER.read_text(encoding='utf-8').strip()}\n\n\n# The checks of this lab.\n{self.checks_source()}\n"

    def otter_test(self, question) -> str:
        """Otter-Grader's test file for ``question``: one test case per check, with its points.

        A failed check raises ``CheckFailed`` with the check's message, which Otter shows
        under the test case's name.
        """
        if question not in self.questions:
            raise ValueError(f"{self.name} has no question {question!r}; it has {', '.join(self.questions)}")
        return (f'"""Otter-Grader test file: {self.name}, question {question}.\n\n'
                f"Written by tools/labs.py from labs/grader.py and labs/{self.name}.py; edit those.\n"
                '"""\n'
                "OK_FORMAT = False\n"
                f"name = {question!r}\n\n"
                f"{self.grader_source()}\n\n"
                "# The lab's given cells: the checks use their helpers and imports too (the authoritative\n"
                "# copy, whatever a notebook did to its own), run without moving the student's random state.\n"
                f"_GIVEN = {self.given_source()!r}\n"
                "with torch.random.fork_rng(devices=[]):\n"
                f"    exec(compile(_GIVEN, '<{self.name} given cells>', 'exec'), globals())\n\n"
                "# Each check of this question is one Otter test case worth the check's points.\n"
                "from otter.test_files import test_case as _test_case\n\n\n"
                "def _test_case_of(title, points, function):\n"
                "    def run_check(env):\n"
                "        passed, what_to_look_at = _verdict(function, env)\n"
                "        if not passed:\n"
                "            raise CheckFailed(what_to_look_at)\n\n"
                "    return _test_case(name=title, points=points)(run_check)\n\n\n"
                f"for _number, _check in enumerate(_CHECKS[{question!r}], start=1):\n"
                "    globals()[f\"check_{_number}\"] = _test_case_of(*_check)\n")

    def otter_tests(self) -> dict:
        """{file name: source} of the lab's Otter test files."""
        return {f"{question}.py": self.otter_test(question) for question in self.questions}

    def setup_cell(self) -> str:
        """The first code cell of a lab notebook: Otter-Grader, and the lab's test files.

        The notebook carries its test files, compressed, and writes them to
        ``tests/LAB/`` beside itself, where ``make labs`` also puts them: a notebook
        opened on its own (on Colab, say) checks itself. Compressed, they do not show in
        the notebook; once written they are plain Python any student can read, and grades
        do not depend on them: the teacher's autograder brings its own copy.
        """
        packed = base64.b64encode(zlib.compress(json.dumps(self.otter_tests()).encode(), 9)).decode()
        lines = [packed[i:i + 100] for i in range(0, len(packed), 100)]
        return (f"{SETUP_TITLE}\n"
                "import base64 as _base64, importlib as _importlib, json as _json, pathlib as _pathlib, zlib as _zlib\n"
                "import importlib.util as _util\n\n"
                'if _util.find_spec("otter") is None:  # on Colab, say\n'
                f'    print("Installing {OTTER} (Otter-Grader, which runs this lab\'s checks)")\n'
                f"    %pip install --quiet {OTTER}\n"
                "    _importlib.invalidate_caches()\n"
                'if _util.find_spec("otter") is None:\n'
                f'    raise ModuleNotFoundError("this lab\'s checks need Otter-Grader: pip install {OTTER}")\n\n'
                f"# The checks of this lab, as Otter's test files in tests/{self.name}/ (one folder per lab,\n"
                "# so that labs sharing a folder do not run each other's checks).\n"
                "_TESTS = (\n" + "".join(f'    "{line}"\n' for line in lines) + ")\n"
                "for _name, _source in _json.loads(_zlib.decompress(_base64.b64decode(_TESTS))).items():\n"
                f'    _path = _pathlib.Path("tests", "{self.name}", _name)\n'
                "    _path.parent.mkdir(parents=True, exist_ok=True)\n"
                '    if not _path.exists() or _path.read_text(encoding="utf-8") != _source:\n'
                '        _path.write_text(_source, encoding="utf-8")\n\n'
                "import otter\n\n"
                f'grader = otter.Notebook(tests_dir="tests/{self.name}")\n')

    def mistakes(self) -> list:
        namespace = {}
        for cell in self.of_kind("mistakes"):
            exec(cell.source, namespace)
        return namespace.get("MISTAKES", [])

    def reference_answers(self) -> dict:
        return {question: solution(self.answer(question)) for question in self.questions}

    def stub_answers(self) -> dict:
        return {question: stub(self.answer(question)) for question in self.questions}


def load_lab(path) -> Lab:
    """Parse a lab source into cells; raise ValueError on a malformed one."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    marks = list(CELL.finditer(text))
    if not marks or text[:marks[0].start()].strip():
        raise ValueError(f"{path.name}: a lab source starts with a '# %% [KIND]' line")
    lab = Lab(path.stem, path)
    for mark, following in zip(marks, marks[1:] + [None]):
        kind, question = mark.group(1), mark.group(2)
        body = text[mark.end():following.start() if following else len(text)].strip("\n")
        if (kind == "answer") != (question is not None):
            raise ValueError(f"{path.name}: only an [answer] cell names a question, and it must ({mark.group(0)!r})")
        if kind == "markdown":
            lines = body.splitlines()
            if any(line and not line.startswith("#") for line in lines):
                raise ValueError(f"{path.name}: every line of a [markdown] cell starts with '#'")
            body = "\n".join(re.sub(r"^# ?", "", line) for line in lines)
        lab.cells.append(Cell(kind, body, question))
    if not lab.of_kind("answer") or not lab.of_kind("checks"):
        raise ValueError(f"{path.name}: a lab needs at least one [answer] and one [checks] cell")
    if len(set(lab.questions)) != len(lab.questions):
        raise ValueError(f"{path.name}: two [answer] cells for one question")
    for question in lab.questions:
        stub(lab.answer(question))  # checks the markers
    return lab


def all_labs() -> list:
    return [load_lab(path) for path in sorted(LAB_DIR.glob("lab[0-9]*.py"))]


def find_lab(name) -> Lab:
    for lab in all_labs():
        if lab.name == name:
            return lab
    raise ValueError(f"no lab {name!r}; the labs are {', '.join(lab.name for lab in all_labs())}")


def solution(source: str) -> str:
    """The reference answer: the source without its solution markers."""
    return "\n".join(line for line in source.splitlines() if line.strip() not in (BEGIN, END))


def stub(source: str) -> str:
    """The student's starting point: each solution region becomes a NotImplementedError.

    The message names the enclosing function and repeats the nearest ``# TODO:`` line
    above the region, which stays in the stub as the instruction.
    """
    lines, out, inside, function, todo = source.splitlines(), [], False, None, None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside or todo is None or function is None:
                raise ValueError(f"line {number}: {BEGIN} needs a '# TODO:' line above it inside a def, "
                                 "and no open region")
            inside = True
            indent = line[:len(line) - len(line.lstrip())]
            out.append(f"{indent}raise NotImplementedError({f'{function}: {todo}'!r})")
            continue
        if stripped == END:
            if not inside:
                raise ValueError(f"line {number}: {END} without {BEGIN}")
            inside, todo = False, None
            continue
        if inside:
            continue
        match = re.match(r"\s*def (\w+)\(", line)
        if match:
            function, todo = match.group(1), None
        if stripped.startswith("# TODO:"):
            todo = stripped[len("# TODO:"):].strip()
        out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END}")
    return "\n".join(out)


# Notebooks, as plain JSON (nbformat 4.5), so that building needs nothing but Python.

def _cell(cell_type: str, source: str, index: int, metadata: dict | None = None) -> dict:
    cell = {"cell_type": cell_type, "id": f"cell-{index}", "metadata": metadata or {},
            "source": source.splitlines(keepends=True)}
    if cell_type == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def notebook(lab: Lab, reference: bool = False) -> dict:
    """The lab as a notebook (a dict in nbformat 4.5): the student copy, or with the reference answers."""
    cells = []
    for cell in lab.cells:
        if cell.kind == "markdown":
            cells.append(_cell("markdown", cell.source, len(cells)))
            if len(cells) == 1:  # after the lab's introduction
                cells.append(_cell("markdown", HOW_TO_WORK, len(cells)))
            continue
        if cell.kind in ("checks", "mistakes"):
            continue
        if not any("lab-setup" in c["metadata"].get("tags", []) for c in cells):
            # Otter and the checks come before the first code cell, folded in Colab (a form) and in JupyterLab.
            cells.append(_cell("code", lab.setup_cell(), len(cells),
                               {"cellView": "form", "jupyter": {"source_hidden": True}, "tags": ["lab-setup"]}))
        if cell.kind == "answer":
            source = solution(cell.source) if reference else stub(cell.source)
            cells.append(_cell("code", source, len(cells), {"tags": ["lab-answer"], "lab": {"answer": cell.question}}))
        else:
            cells.append(_cell("code", cell.source, len(cells), {"tags": [f"lab-{cell.kind}"]}))
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"},
                         "lab": {"name": lab.name, "questions": lab.questions}}}


def write_notebook(nb: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def build(out: Path) -> list:
    """Per lab, the student's notebook ``out/LAB.ipynb`` with its test files in ``out/tests/LAB/``,
    and the reference copy in ``out/solutions``."""
    written = []
    for lab in all_labs():
        written.append(write_notebook(notebook(lab), out / f"{lab.name}.ipynb"))
        for name, source in lab.otter_tests().items():
            path = out / "tests" / lab.name / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source, encoding="utf-8")
            written.append(path)
        written.append(write_notebook(notebook(lab, reference=True), out / "solutions" / f"{lab.name}.ipynb"))
    return written


def autograder(lab: Lab, out: Path) -> Path:
    """Otter's autograder configuration for ``lab`` (``otter generate``), written to ``out/LAB.zip``.

    It holds the lab's test files and, for the images that ``otter grade`` and
    Gradescope build from it, the book's PyTorch pin as its requirements; ``otter run``
    and ``tools/labs.py grade`` install nothing and grade in the Python that runs them.
    """
    import tempfile

    out.mkdir(parents=True, exist_ok=True)
    target = (out / f"{lab.name}.zip").resolve()
    with tempfile.TemporaryDirectory() as scratch:
        tests = Path(scratch) / "tests"
        tests.mkdir()
        for name, source in lab.otter_tests().items():
            (tests / name).write_text(source, encoding="utf-8")
        (Path(scratch) / "requirements.txt").write_text(f"{torch_pin()}\n", encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "otter", "generate", "-t", "tests", "-o", str(target),
                               "-r", "requirements.txt", "--no-config", "--no-environment"],
                              cwd=scratch, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"otter generate failed for {lab.name}:\n{done.stdout}{done.stderr}")
    return target


def torch_pin() -> str:
    """``torch==X`` as requirements.txt pins it."""
    pins = [line.split(";")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.startswith("torch==")]
    if len(pins) != 1:
        raise ValueError(f"requirements.txt should pin torch once, found {pins}")
    return pins[0]


def autograder_is_current(lab: Lab, zip_path: Path) -> bool:
    """Whether the zip at ``zip_path`` holds exactly the lab's test files as they are now."""
    import zipfile

    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = {name[len("tests/"):] for name in archive.namelist() if name.startswith("tests/") and name.endswith(".py")}
            return names == set(lab.otter_tests()) and all(
                archive.read(f"tests/{name}").decode("utf-8") == source for name, source in lab.otter_tests().items())
    except (OSError, zipfile.BadZipFile):
        return False


# Grading: Otter runs the test files; these helpers feed it a namespace or a notebook.

def otter_results(lab: Lab, question: str, namespace: dict) -> list:
    """Run Otter's test file for ``question`` on ``namespace``: [(title, points, earned, message)].

    The message is the check's own (Otter's report around it, with the line of the
    test file that raised, is left out here; students see it whole).
    """
    from otter.test_files import ExceptionTestFile

    test_file = ExceptionTestFile.from_string(lab.otter_test(question), path=f"tests/{question}.py")
    test_file.run(namespace)
    return rows_of(test_file)


def rows_of(test_file) -> list:
    """An Otter test file's results as [(title, points, earned, message)], the message being
    the check's own (what follows ``CheckFailed: `` in Otter's report), empty if it passed."""
    rows = []
    for result in test_file.test_case_results:
        message = "" if result.passed else result.message.rpartition("\nCheckFailed: ")[2].strip() or result.message
        points = result.test_case.points
        rows.append((result.test_case.name, points, points if result.passed else 0, message))
    return rows


def grade_answers(lab: Lab, answers: dict) -> dict:
    """Run the lab's given cells and ``answers`` ({question: cell source}) in one namespace, then
    Otter's test files on it, in this process. Returns {question: [(title, points, earned, message)]}."""
    namespace = {"__name__": "__main__"}
    for index, cell in enumerate(lab.of_kind("given")):
        exec(compile(cell.source, f"<{lab.name} given cell {index}>", "exec"), namespace)
    problems = {}
    for question in lab.questions:
        try:
            exec(compile(answers[question], f"<answer {question}>", "exec"), namespace)
        except Exception as error:
            problems[question] = f"the answer cell raised {type(error).__name__}: {error}"
    results = {}
    for question in lab.questions:
        results[question] = otter_results(lab, question, namespace)
        if question in problems:
            results[question] = [(title, points, earned, message if earned else f"{problems[question]}; {message}")
                                 for title, points, earned, message in results[question]]
    return results


def score(results: dict) -> tuple:
    """(earned, possible) over all questions."""
    rows = [row for rows in results.values() for row in rows]
    return sum(row[2] for row in rows), sum(row[1] for row in rows)


def lab_of(path) -> Lab:
    """The lab a saved notebook is, from its metadata; ValueError if it does not say."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable notebook ({error})") from None
    name = nb.get("metadata", {}).get("lab", {}).get("name") if isinstance(nb, dict) else None
    if not name:
        raise ValueError(f"{path}: the notebook does not say which lab it is (metadata 'lab'); pass --lab NAME")
    return find_lab(name)


def grade_one(path: str, lab_name: str | None, autograders: Path) -> dict:
    """Grade one saved notebook with Otter (``otter.api.grade_submission``), in this process."""
    import contextlib
    import io

    from otter.api import grade_submission

    lab = find_lab(lab_name) if lab_name else lab_of(path)
    zip_path = autograders / f"{lab.name}.zip"
    if not autograder_is_current(lab, zip_path):  # missing, or written before the lab changed
        autograder(lab, autograders)
    with contextlib.redirect_stdout(io.StringIO()):  # Otter's progress, not the grades
        graded = grade_submission(str(Path(path).resolve()), str(zip_path), quiet=True)
    if graded.catastrophic_error is not None:
        raise RuntimeError(f"Otter could not grade it: {graded.catastrophic_error}")
    try:  # the cross-check: the answer cells alone with the checks; Otter's grade stands if it fails
        with contextlib.redirect_stdout(io.StringIO()):
            alone = {question: sum(row[2] for row in rows)
                     for question, rows in grade_answers(lab, answers_from_notebook(lab, path)).items()}
    except BaseException as error:  # an answer cell that exits, say
        alone = {question: None for question in lab.questions}
        print(f"the answer cells could not be run alone: {type(error).__name__}: {error}", file=sys.stderr)
    results = {question: rows_of(graded.results[question]) for question in lab.questions}
    return {"lab": lab.name, "results": results, "alone": alone}


def answers_from_notebook(lab: Lab, path) -> dict:
    """The answer cells of a saved lab notebook, by question: the cell whose metadata says so
    (as `make labs` wrote it), failing that the last code cell that defines the function."""
    cells = [cell for cell in json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
             if cell.get("cell_type") == "code"]
    answers = {}
    for question in lab.questions:
        sources = ["".join(cell.get("source", "")) for cell in cells
                   if cell.get("metadata", {}).get("lab", {}).get("answer") == question]
        sources = sources or ["".join(cell.get("source", "")) for cell in cells
                              if re.search(rf"^def {question}\(", "".join(cell.get("source", "")), re.M)]
        answers[question] = sources[-1] if sources else f"raise NameError('no answer cell for {question}')"
    return answers


RESULT = "labs.py result: "  # marks the grading process's summary line among what students' code prints


def grade_paths(paths, lab_name=None, timeout=120.0, autograders=None) -> list:
    """Grade each notebook in a fresh Python process (a submission's loop cannot hang the others)."""
    autograders = Path(autograders or ROOT / "_build" / "labs" / "autograder")
    summaries = []
    for path in paths:
        command = [sys.executable, __file__, "_grade_one", str(path), "--autograders", str(autograders)] + \
            (["--lab", lab_name] if lab_name else [])
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            summaries.append({"path": str(path), "error": f"ran longer than {timeout:.0f} s"})
            continue
        if done.returncode != 0:
            summaries.append({"path": str(path), "error": (done.stderr.strip().splitlines() or ["failed"])[-1]})
            continue
        found = [line[len(RESULT):] for line in done.stdout.splitlines() if line.startswith(RESULT)]
        if not found:
            summaries.append({"path": str(path), "error": "the grading process printed no result"})
            continue
        summaries.append({"path": str(path)} | json.loads(found[-1]))
    return summaries


def print_results(results: dict, heading: str) -> None:
    earned, possible = score(results)
    print(f"{heading}: {earned:g}/{possible:g}")
    for question, rows in results.items():
        print(f"  {question}: {sum(r[2] for r in rows):g}/{sum(r[1] for r in rows):g}")
        for title, points, got, message in rows:
            if not got:
                print(f"    FAIL [{points:g}] {title}: {message}")


def selftest() -> bool:
    """For every lab: the reference scores full marks, the stub zero, each planted mistake fails its check."""
    import torch

    torch.set_num_threads(1)
    ok = True
    for lab in all_labs():
        start = time.perf_counter()
        reference = score(grade_answers(lab, lab.reference_answers()))
        seconds = time.perf_counter() - start
        stubbed = score(grade_answers(lab, lab.stub_answers()))
        print(f"{lab.name}: reference {reference[0]:g}/{reference[1]:g} ({seconds:.2f} s), "
              f"stub {stubbed[0]:g}/{stubbed[1]:g}")
        ok &= reference[0] == reference[1] and stubbed[0] == 0
        for mistake in lab.mistakes():
            caught = catch(lab, mistake)
            ok &= caught["caught"]
            print(f"  mistake: {mistake['name']}: {'caught' if caught['caught'] else 'NOT CAUGHT'} by "
                  f"'{caught['check']}' ({caught['score'][0]:g}/{caught['score'][1]:g})\n"
                  f"    message: {caught['message']}")
    return ok


def plant(lab: Lab, mistake: dict) -> dict:
    """The reference answers with ``mistake`` planted: its ``replace`` (old, new) applied once."""
    answers = lab.reference_answers()
    old, new = mistake["replace"]
    source = answers[mistake["question"]]
    if source.count(old) != 1:
        raise ValueError(f"{lab.name}, mistake {mistake['name']!r}: {old!r} occurs {source.count(old)} times "
                         f"in the answer to {mistake['question']}, not once")
    answers[mistake["question"]] = source.replace(old, new)
    return answers


def catch(lab: Lab, mistake: dict) -> dict:
    """Grade the planted mistake: did the named check fail, with the expected words?"""
    results = grade_answers(lab, plant(lab, mistake))
    rows = {title: (got, message) for title, _, got, message in results[mistake["question"]]}
    if mistake["check"] not in rows:
        raise ValueError(f"{lab.name}: no check {mistake['check']!r} in {mistake['question']} (has {list(rows)})")
    got, message = rows[mistake["check"]]
    return {"caught": not got and mistake["says"] in message, "check": mistake["check"], "message": message,
            "score": score(results)}


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="write the lab notebooks and their test files")
    build_parser.add_argument("out", nargs="?", default=str(ROOT / "_build" / "labs"))
    autograder_parser = commands.add_parser("autograder", help="write Otter's autograder zip of every lab")
    autograder_parser.add_argument("out", nargs="?", default=str(ROOT / "_build" / "labs"))
    grade_parser = commands.add_parser("grade", help="grade saved lab notebooks with Otter")
    grade_parser.add_argument("notebooks", nargs="+")
    grade_parser.add_argument("--lab", help="the lab's name, if a notebook's metadata lost it")
    grade_parser.add_argument("--csv", help="also write one row per notebook and question to this file")
    grade_parser.add_argument("--timeout", type=float, default=120.0, help="seconds per notebook (default 120)")
    grade_parser.add_argument("--autograders", help="folder of the autograder zips (default _build/labs/autograder)")
    commands.add_parser("selftest", help="reference, stub and planted mistakes of every lab")
    one = commands.add_parser("_grade_one")
    one.add_argument("notebook")
    one.add_argument("--lab")
    one.add_argument("--autograders", required=True)
    args = parser.parse_args(argv)

    if args.command == "build":
        for path in build(Path(args.out)):
            print(f"wrote {path}")
        return 0
    if args.command == "autograder":
        for lab in all_labs():
            print(f"wrote {autograder(lab, Path(args.out) / 'autograder')}")
        return 0
    if args.command == "_grade_one":
        summary = grade_one(args.notebook, args.lab, Path(args.autograders))
        print(f"\n{RESULT}{json.dumps(summary)}")
        return 0
    if args.command == "selftest":
        return 0 if selftest() else 1
    summaries = grade_paths(args.notebooks, args.lab, args.timeout, args.autograders)
    rows = []
    for summary in summaries:
        if "error" in summary:
            print(f"{summary['path']}: could not be graded: {summary['error']}")
            rows.append([summary["path"], "", "", 0, 0, 0, summary["error"]])
            continue
        print_results(summary["results"], f"{summary['path']} ({summary['lab']})")
        for question, results in summary["results"].items():
            failed = "; ".join(f"{title}: {message}" for title, _, got, message in results if not got)
            earned, alone = sum(r[2] for r in results), summary["alone"][question]
            if alone is None:
                print(f"  WARNING {question}: the answer cells could not be run alone; read this notebook")
            elif earned != alone:
                print(f"  WARNING {question}: Otter gave {earned:g}, the answer cells run alone with the checks "
                      f"{alone:g}; read this notebook (another cell may have changed an answer or the checks)")
            rows.append([summary["path"], summary["lab"], question, f"{earned:g}",
                         f"{sum(r[1] for r in results):g}", "" if alone is None else f"{alone:g}", failed])
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["notebook", "lab", "question", "earned", "possible", "answer cells alone",
                             "failed checks"])
            writer.writerows(rows)
        print(f"wrote {args.csv}")
    return 1 if any("error" in summary for summary in summaries) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
