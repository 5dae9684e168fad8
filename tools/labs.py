"""Lab notebooks from the lab sources in labs/, and their grader on the command line.

A lab source (``labs/labNN_*.py``) is a Python file cut into cells by ``# %% [KIND]``
lines; it holds the reference solutions and the checks:

- ``[markdown]``: text, each line behind ``# ``;
- ``[given]``: code the student runs and does not change (imports, helpers);
- ``[answer] NAME``: the cell where the student writes question NAME. The reference
  code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes, in the student
  copy, ``raise NotImplementedError(...)`` with the ``# TODO:`` line above it as message;
- ``[code]``: a cell for the student to run (``check("NAME")``, ``grade()``); the
  command-line grader skips it;
- ``[checks]``: the checks (``@check_of``), put after ``labs/grader.py`` in the
  notebook's first code cell;
- ``[mistakes]``: ``MISTAKES = [...]``, planted common mistakes that
  ``tests/test_labs.py`` and ``selftest`` prove the checks catch (never in a notebook).

    python tools/labs.py build [OUT]            student copies in OUT (default _build/labs),
                                                reference copies in OUT/solutions
    python tools/labs.py grade NOTEBOOK... [--lab NAME] [--csv FILE] [--timeout S]
                                                grade saved notebooks (each in its own process)
    python tools/labs.py selftest               per lab: reference, stub and planted mistakes

Building needs nothing but Python 3.10+; grading needs PyTorch too.
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
GRADER_TITLE = "# @title Grader: run this cell first, do not edit it"


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

    def grader_source(self) -> str:
        """The grader and this lab's checks, as one piece of Python."""
        return f"{GRADER.read_text(encoding='utf-8').strip()}\n\n\n# The checks of this lab.\n{self.checks_source()}\n"

    def grader_cell(self, reference: bool) -> str:
        """The first code cell of a lab notebook.

        The reference copy shows the checks. The student copy carries them compressed:
        their diagnoses compute the common mistakes, and so the right answers, which a
        student should not meet at a glance. Anyone can decompress them; grades do not
        depend on it, since the teacher's grader takes the checks from the lab source.
        """
        if reference:
            return f"{GRADER_TITLE}\n{self.grader_source()}"
        packed = base64.b64encode(zlib.compress(self.grader_source().encode(), 9)).decode()
        lines = [packed[i:i + 100] for i in range(0, len(packed), 100)]
        return (f"{GRADER_TITLE}\n"
                f"# The checks of this lab (they need only PyTorch), compressed so that they do not show the\n"
                f"# answers at a glance; a teacher reads them in labs/{self.name}.py.\n"
                "import base64 as _base64, zlib as _zlib\n\n"
                "_CHECKS_SOURCE = (\n" + "".join(f'    "{line}"\n' for line in lines) + ")\n"
                f"exec(compile(_zlib.decompress(_base64.b64decode(_CHECKS_SOURCE)).decode(), \"<{self.name} grader>\", \"exec\"))\n")

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
            continue
        if cell.kind in ("checks", "mistakes"):
            continue
        if not any("lab-grader" in c["metadata"].get("tags", []) for c in cells):
            # The grader goes before the first code cell, folded in Colab (a form) and in JupyterLab.
            cells.append(_cell("code", lab.grader_cell(reference), len(cells),
                               {"cellView": "form", "jupyter": {"source_hidden": True}, "tags": ["lab-grader"]}))
        if cell.kind == "answer":
            source = solution(cell.source) if reference else stub(cell.source)
            cells.append(_cell("code", source, len(cells), {"tags": ["lab-answer"], "lab": {"answer": cell.question}}))
        else:
            cells.append(_cell("code", cell.source, len(cells), {"tags": [f"lab-{cell.kind}"]}))
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"},
                         "lab": {"name": lab.name, "questions": lab.questions}}}


def build(out: Path) -> list:
    """Write every lab's student copy to ``out`` and its reference copy to ``out/solutions``."""
    written = []
    for lab in all_labs():
        for reference, folder in ((False, out), (True, out / "solutions")):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{lab.name}.ipynb"
            path.write_text(json.dumps(notebook(lab, reference), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            written.append(path)
    return written


def read_notebook(path) -> dict:
    """A saved notebook as a dict whose cells' sources are strings; ValueError if it is not one."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
        cells = nb["cells"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a readable notebook ({error})") from None
    for cell in cells:
        source = cell.get("source", "")
        cell["source"] = "".join(source) if isinstance(source, list) else source
        cell.setdefault("metadata", {})
    nb.setdefault("metadata", {})
    return nb


def answers_from_notebook(lab: Lab, nb: dict) -> dict:
    """The student's answer cells of a saved lab notebook, by question.

    A cell counts as the answer to NAME if its metadata says so (the cells `make labs`
    wrote); failing that, the last code cell that defines ``def NAME(``.
    """
    code = [cell for cell in nb["cells"] if cell.get("cell_type") == "code"]
    answers = {}
    for question in lab.questions:
        tagged = [cell["source"] for cell in code if cell["metadata"].get("lab", {}).get("answer") == question]
        defining = [cell["source"] for cell in code if re.search(rf"^\s*def {question}\(", cell["source"], re.M)
                    and "lab-grader" not in cell["metadata"].get("tags", [])]
        found = tagged or defining
        if found:
            answers[question] = found[-1]
    return answers


# Grading.

def strip_magics(source: str) -> str:
    """IPython lines (``%...``, ``!...``) become comments, so plain Python can run a cell."""
    return "\n".join("# " + line if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def grade_answers(lab: Lab, answers: dict) -> dict:
    """Run the lab's checks on ``answers`` ({question: cell source}) in this process.

    The grader, the checks and the given cells come from the lab source, whatever a
    submission did to its copies. Returns {question: [(title, points, earned, message)]}.
    """
    namespace = {"__name__": f"lab_{lab.name}"}
    exec(compile(lab.grader_source(), f"<{lab.name} grader>", "exec"), namespace)
    for index, cell in enumerate(lab.of_kind("given")):
        exec(compile(cell.source, f"<{lab.name} given cell {index}>", "exec"), namespace)
    problems = {}
    for question in lab.questions:
        source = answers.get(question)
        if source is None:
            problems[question] = "no answer cell found for this question"
            continue
        try:
            exec(compile(strip_magics(source), f"<answer {question}>", "exec"), namespace)
        except Exception as error:
            problems[question] = f"the answer cell raised {type(error).__name__}: {error}"
    results = {}
    for question in lab.questions:
        results[question] = namespace["run_checks"](question, namespace)
        if question in problems:
            results[question] = [(title, points, earned, message if earned else f"{problems[question]}; {message}")
                                 for title, points, earned, message in results[question]]
    return results


def score(results: dict) -> tuple:
    """(earned, possible) over all questions."""
    rows = [row for rows in results.values() for row in rows]
    return sum(row[2] for row in rows), sum(row[1] for row in rows)


def print_results(results: dict, heading: str) -> None:
    earned, possible = score(results)
    print(f"{heading}: {earned}/{possible}")
    for question, rows in results.items():
        print(f"  {question}: {sum(r[2] for r in rows)}/{sum(r[1] for r in rows)}")
        for title, points, got, message in rows:
            if not got:
                print(f"    FAIL [{points}] {title}: {message}")


def lab_of(nb: dict, name: str | None) -> Lab:
    name = name or nb["metadata"].get("lab", {}).get("name")
    if not name:
        raise ValueError("the notebook does not say which lab it is (metadata 'lab'); pass --lab NAME")
    return find_lab(name)


def grade_one(path: str, lab_name: str | None) -> dict:
    """Grade one saved notebook in this process; returns a JSON-able summary."""
    nb = read_notebook(path)
    lab = lab_of(nb, lab_name)
    import torch

    torch.set_num_threads(1)
    results = grade_answers(lab, answers_from_notebook(lab, nb))
    return {"lab": lab.name, "results": results}


def grade_paths(paths, lab_name=None, timeout=120.0) -> list:
    """Grade each notebook in a fresh Python process (a submission's loop cannot hang the others)."""
    summaries = []
    for path in paths:
        command = [sys.executable, __file__, "_grade_one", str(path)] + (["--lab", lab_name] if lab_name else [])
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            summaries.append({"path": str(path), "error": f"ran longer than {timeout:.0f} s"})
            continue
        if done.returncode != 0:
            summaries.append({"path": str(path), "error": (done.stderr.strip().splitlines() or ["failed"])[-1]})
            continue
        summaries.append({"path": str(path)} | json.loads(done.stdout))
    return summaries


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
        print(f"{lab.name}: reference {reference[0]}/{reference[1]} ({seconds:.2f} s), stub {stubbed[0]}/{stubbed[1]}")
        ok &= reference[0] == reference[1] and stubbed[0] == 0
        for mistake in lab.mistakes():
            caught = catch(lab, mistake)
            ok &= caught["caught"]
            print(f"  mistake: {mistake['name']}: {'caught' if caught['caught'] else 'NOT CAUGHT'} by "
                  f"'{caught['check']}' ({caught['score'][0]}/{caught['score'][1]})\n    message: {caught['message']}")
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
    build_parser = commands.add_parser("build", help="write the lab notebooks")
    build_parser.add_argument("out", nargs="?", default=str(ROOT / "_build" / "labs"))
    grade_parser = commands.add_parser("grade", help="grade saved lab notebooks")
    grade_parser.add_argument("notebooks", nargs="+")
    grade_parser.add_argument("--lab", help="the lab's name, if a notebook's metadata lost it")
    grade_parser.add_argument("--csv", help="also write one row per notebook and question to this file")
    grade_parser.add_argument("--timeout", type=float, default=120.0, help="seconds per notebook (default 120)")
    commands.add_parser("selftest", help="reference, stub and planted mistakes of every lab")
    one = commands.add_parser("_grade_one")
    one.add_argument("notebook")
    one.add_argument("--lab")
    args = parser.parse_args(argv)

    if args.command == "build":
        for path in build(Path(args.out)):
            print(f"wrote {path}")
        return 0
    if args.command == "_grade_one":
        print(json.dumps(grade_one(args.notebook, args.lab)))
        return 0
    if args.command == "selftest":
        return 0 if selftest() else 1
    summaries = grade_paths(args.notebooks, args.lab, args.timeout)
    rows = []
    for summary in summaries:
        if "error" in summary:
            print(f"{summary['path']}: could not be graded: {summary['error']}")
            rows.append([summary["path"], "", "", 0, 0, summary["error"]])
            continue
        print_results(summary["results"], f"{summary['path']} ({summary['lab']})")
        for question, results in summary["results"].items():
            failed = "; ".join(f"{title}: {message}" for title, _, got, message in results if not got)
            rows.append([summary["path"], summary["lab"], question, sum(r[2] for r in results),
                         sum(r[1] for r in results), failed])
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["notebook", "lab", "question", "earned", "possible", "failed checks"])
            writer.writerows(rows)
        print(f"wrote {args.csv}")
    return 1 if any("error" in summary for summary in summaries) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
