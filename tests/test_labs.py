"""The labs (labs/, tools/labs.py), graded by Otter-Grader: through Otter's own test-file
runner, every lab's reference scores full marks, its stub zero, and each planted common
mistake fails the check meant for it; the notebooks `make labs` writes check themselves
with `grader.check` in a notebook, and Otter's non-containerized grading (`otter run`)
grades saved submissions from the command line."""

import base64
import csv
import importlib.util
import json
import re
import subprocess
import sys
import zipfile
import zlib

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("labs_tool", ROOT / "tools" / "labs.py")
labs = importlib.util.module_from_spec(spec)
sys.modules["labs_tool"] = labs  # dataclasses look their module up
spec.loader.exec_module(labs)

LABS = labs.all_labs()
MISTAKES = [(lab, mistake) for lab in LABS for mistake in lab.mistakes()]


def test_the_labs_of_the_issue_exist():
    assert [lab.name[:5] for lab in LABS] == ["lab02", "lab03", "lab06", "lab09", "lab13", "lab16"]
    for lab in LABS:
        assert lab.title.startswith("Lab "), lab.name
        assert len(lab.mistakes()) >= 2, f"{lab.name}: plant at least two common mistakes"


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.name)
def test_reference_scores_full_marks(lab):
    results = labs.grade_answers(lab, lab.reference_answers())
    failed = [(question, title, message) for question, rows in results.items()
              for title, _, earned, message in rows if not earned]
    assert not failed
    earned, possible = labs.score(results)
    assert earned == possible >= 8


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.name)
def test_stub_scores_zero_and_says_what_to_do(lab):
    results = labs.grade_answers(lab, lab.stub_answers())
    assert labs.score(results)[0] == 0
    for question, rows in results.items():
        assert len(rows) >= 2, f"{lab.name}: {question} has a single check"
        # The first check of each question meets the stub first: it repeats the TODO.
        assert rows[0][3].startswith(f"not implemented yet ({question}: "), rows[0][3]


@pytest.mark.parametrize("lab, mistake", MISTAKES, ids=[f"{lab.name}-{m['name']}" for lab, m in MISTAKES])
def test_planted_mistake_fails_its_check_with_its_message(lab, mistake):
    caught = labs.catch(lab, mistake)
    assert caught["caught"], caught["message"]
    earned, possible = caught["score"]
    assert 0 < earned < possible  # the rest of the lab still passes


def test_the_mistakes_the_issue_names_are_planted():
    planted = {(lab.name[:5], mistake["name"]) for lab, mistake in MISTAKES}
    for wanted in [("lab02", "ReLU instead of tanh"), ("lab02", "the hidden bias dropped"),
                   ("lab03", "weight gradients not accumulated across steps"),
                   ("lab06", "the forget gate through tanh instead of sigmoid"),
                   ("lab09", "the update gate mixing h and n the wrong way round"),
                   ("lab13", "packing without sorting by length"), ("lab13", "the padding not masked in the loss"),
                   ("lab16", "padding filled with 0 instead of -inf"), ("lab16", "the scores not scaled by sqrt(d)")]:
        assert wanted in planted


def test_the_forget_gate_message_names_the_gate():
    lab = labs.find_lab("lab06_lstm_step")
    mistake = next(m for m in lab.mistakes() if "forget gate" in m["name"])
    assert labs.catch(lab, mistake)["message"] == (
        "c_t differs from nn.LSTM's at step 0 (largest difference 0.8): check the forget gate's nonlinearity (sigmoid)")


def test_a_mistake_that_is_not_planted_once_is_refused():
    lab = labs.find_lab("lab02_rnn_step")
    with pytest.raises(ValueError, match="occurs 0 times"):
        labs.plant(lab, {"name": "x", "question": "rnn_step", "replace": ("torch.sigmoid(", "torch.tanh(")})


def test_stub_replaces_the_solution_with_the_todo():
    source = ("def f(x):\n    \"\"\"Doc.\"\"\"\n    # TODO: double x\n    ### BEGIN SOLUTION\n    return 2 * x\n"
              "    ### END SOLUTION\n")
    assert labs.stub(source) == ("def f(x):\n    \"\"\"Doc.\"\"\"\n    # TODO: double x\n"
                                 "    raise NotImplementedError('f: double x')")
    assert labs.solution(source) == "def f(x):\n    \"\"\"Doc.\"\"\"\n    # TODO: double x\n    return 2 * x"
    with pytest.raises(ValueError, match="needs a '# TODO:' line"):
        labs.stub("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION")
    with pytest.raises(ValueError, match="without ### END SOLUTION"):
        labs.stub("def f(x):\n    # TODO: it\n    ### BEGIN SOLUTION\n    return x")
    with pytest.raises(ValueError, match="without ### BEGIN SOLUTION"):
        labs.stub("def f(x):\n    return x\n    ### END SOLUTION")


def test_malformed_lab_sources_are_refused(tmp_path):
    bad = {"text before the first cell": "x = 1\n# %% [checks]\npass\n",
           "answer cell without a question": "# %% [answer]\npass\n# %% [checks]\npass\n",
           "markdown line without #": "# %% [markdown]\nplain\n# %% [answer] f\npass\n# %% [checks]\npass\n",
           "no checks": "# %% [answer] f\ndef f():\n    pass\n"}
    for index, (what, text) in enumerate(bad.items()):
        path = tmp_path / f"lab{index}.py"
        path.write_text(text)
        with pytest.raises(ValueError):
            labs.load_lab(path)


def test_grader_helpers():
    namespace = {"__name__": "lab_test"}
    exec(labs.GRADER.read_text(), namespace)
    with pytest.raises(ValueError, match="positive integer"):
        namespace["check_of"]("q", 0, "zero points")

    def broken(x):
        return [][x]  # an IndexError inside the student's function

    student = {"broken": broken}
    verdict = namespace["_verdict"]
    assert verdict(lambda ns: None, student) == (True, "")
    passed, message = verdict(lambda ns: namespace["call"](ns, "broken", 3), student)
    assert not passed and message.startswith("IndexError: list index out of range (raised at line")
    assert message.endswith("of broken)")
    import torch

    passed, message = verdict(lambda ns: namespace["diagnose"](
        torch.ones(2), torch.zeros(2), {"all ones: subtract one": torch.ones(2)}, "differs"), student)
    assert (passed, message) == (False, "differs (largest difference 1): all ones: subtract one")
    assert verdict(lambda ns: namespace["call"](ns, "missing"), student) == \
        (False, "missing is not defined: run its cell first")


def test_otter_test_files_hold_one_test_case_per_check_with_its_points():
    from otter.test_files import ExceptionTestFile

    lab = labs.find_lab("lab13_packing_masking")
    for question in lab.questions:
        test_file = ExceptionTestFile.from_string(lab.otter_test(question), path=f"tests/{question}.py")
        assert test_file.name == question
        assert [case.name for case in test_file.test_cases] == \
            [row[0] for row in labs.grade_answers(lab, lab.reference_answers())[question]]
        assert all(not case.hidden and case.points >= 1 for case in test_file.test_cases)
    assert sum(ExceptionTestFile.from_string(source, path=name).possible
               for name, source in lab.otter_tests().items()) == 15
    with pytest.raises(ValueError, match="has no question 'lstm_step'"):
        lab.otter_test("lstm_step")
    # No two labs share a question name: test files from two labs can lie in one tests/ folder.
    names = [question for each in LABS for question in each.questions]
    assert len(names) == len(set(names))


def test_built_notebooks_need_no_torch_and_hide_the_solutions(tmp_path):
    # Building imports nothing but the standard library: run it with torch and otter made unimportable.
    code = (f"import runpy, sys; sys.modules['torch'] = sys.modules['otter'] = None; "
            f"sys.argv = ['labs.py', 'build', {str(tmp_path)!r}]; "
            f"runpy.run_path({str(ROOT / 'tools' / 'labs.py')!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for lab in LABS:
        student = json.loads((tmp_path / f"{lab.name}.ipynb").read_text())
        reference = json.loads((tmp_path / "solutions" / f"{lab.name}.ipynb").read_text())
        assert student["nbformat"] == 4 and student["metadata"]["lab"]["name"] == lab.name
        assert {path.name: path.read_text() for path in (tmp_path / "tests" / lab.name).iterdir()} \
            == lab.otter_tests()
        assert "".join(student["cells"][1]["source"]) == labs.HOW_TO_WORK
        code_cells = [cell for cell in student["cells"] if cell["cell_type"] == "code"]
        assert code_cells[0]["metadata"]["tags"] == ["lab-setup"]  # first, folded
        # The setup cell carries the test files compressed, for a notebook opened on its own.
        setup = "".join(code_cells[0]["source"])
        packed = "".join(re.findall(r'^    "([A-Za-z0-9+/=]+)"$', setup, re.M))
        assert json.loads(zlib.decompress(base64.b64decode(packed))) == lab.otter_tests()
        assert f"%pip install --quiet {labs.OTTER}" in setup
        lines = {line for cell in student["cells"] for line in "".join(cell["source"]).splitlines()}
        assert not any("BEGIN SOLUTION" in line or "MISTAKES" in line for line in lines)
        for question, answer in lab.reference_answers().items():
            cell = next(c for c in student["cells"] if c["metadata"].get("lab", {}).get("answer") == question)
            assert "".join(cell["source"]) == labs.stub(lab.answer(question))
            assert "raise NotImplementedError" in "".join(cell["source"])
            solution_lines = set(answer.splitlines()) - set(labs.stub(lab.answer(question)).splitlines())
            assert solution_lines and not solution_lines & lines, question
            assert f'grader.check("{question}")' in lines
            ref_cell = next(c for c in reference["cells"] if c["metadata"].get("lab", {}).get("answer") == question)
            assert "".join(ref_cell["source"]) == answer
        assert "grader.check_all()" in lines


def test_an_answer_cell_that_does_not_run_scores_zero_with_its_error():
    lab = labs.find_lab("lab02_rnn_step")
    answers = lab.reference_answers() | {"rnn_step": "def rnn_step(x, h,\n"}
    results = labs.grade_answers(lab, answers)
    assert all(earned == 0 for _, _, earned, _ in results["rnn_step"])
    assert results["rnn_step"][0][3].startswith("the answer cell raised SyntaxError")


def test_otter_grades_a_folder_of_submissions_from_the_command_line(tmp_path):
    lab = labs.find_lab("lab06_lstm_step")
    done_nb = labs.notebook(lab, reference=True)
    # The shortcut, refused while Otter runs the checks in the notebook's own kernel.
    mistake = next(m for m in lab.mistakes() if "own cell" in m["name"])
    planted_nb = labs.notebook(lab, reference=True)
    for cell in planted_nb["cells"]:
        if cell["metadata"].get("lab", {}).get("answer") == mistake["question"]:
            cell["source"] = labs.plant(lab, mistake)[mistake["question"]]
    lost = {key: value for key, value in labs.notebook(lab)["metadata"].items() if key != "lab"}
    # A forged grade: the stub with a cell that makes every Otter test case pass.
    forged_nb = labs.notebook(lab)
    for cell in forged_nb["cells"]:  # and an answer cell that prints without a newline (the grader's output survives)
        if cell["metadata"].get("lab", {}).get("answer") == "lstm_step":
            cell["source"] = ['print("scratch", end="")\n'] + cell["source"]
    forged_nb["cells"].insert(3, {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                                  "source": "import otter.test_files.exception_test as _e\n"
                                            "_e.test_case.call_func = lambda self, env: None\n"})
    paths = []  # each graded notebook costs a kernel that imports PyTorch: three here
    for name, nb in (("done", done_nb), ("planted", planted_nb), ("unknown", {"cells": [], "metadata": lost}),
                     ("forged", forged_nb)):
        paths.append(tmp_path / f"{name}.ipynb")
        paths[-1].write_text(json.dumps(nb))
    table = tmp_path / "grades.csv"
    autograders = tmp_path / "autograder"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "labs.py"), "grade", *map(str, paths),
                           "--csv", str(table), "--autograders", str(autograders)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr  # one notebook could not be graded
    assert f"{paths[0]} (lab06_lstm_step): 10/10" in done.stdout
    assert f"{paths[1]} (lab06_lstm_step): 1/10" in done.stdout
    assert "your code calls torch.lstm_cell, which does the work of this question" in done.stdout
    assert f"{paths[2]}: could not be graded" in done.stdout and "pass --lab NAME" in done.stdout
    # Otter is fooled; the answer cells run alone with the checks are not, and the grader says so.
    assert f"{paths[3]} (lab06_lstm_step): 10/10" in done.stdout
    assert "WARNING lstm_step: Otter gave 6, the answer cells run alone with the checks 0" in done.stdout
    assert done.stdout.count("WARNING") == 2
    rows = list(csv.DictReader(table.open()))
    earned = {(row["notebook"], row["question"]): int(row["earned"]) for row in rows}
    alone = {(row["notebook"], row["question"]): int(row["answer cells alone"]) for row in rows if row["lab"]}
    assert all(alone[key] == earned[key] for key in alone if str(paths[3]) not in key)
    assert alone[(str(paths[3]), "lstm_step")] == alone[(str(paths[3]), "lstm_forward")] == 0
    assert earned[(str(paths[0]), "lstm_step")] == 6
    assert earned[(str(paths[1]), "lstm_forward")] == 1  # only the ValueError check is independent of the step
    assert earned[(str(paths[1]), "lstm_step")] == 0
    assert "torch.lstm_cell" in next(row["failed checks"] for row in rows if row["notebook"] == str(paths[1]))
    # The autograder zip `otter generate` wrote holds the lab's test files, byte for byte, and the
    # book's PyTorch pin for the images otter grade and Gradescope build.
    assert labs.autograder_is_current(lab, autograders / "lab06_lstm_step.zip")
    with zipfile.ZipFile(autograders / "lab06_lstm_step.zip") as archive:
        environment = archive.read("environment.yml").decode()
    assert f"- {labs.torch_pin()}" in environment.splitlines()[-1] and "otter-grader" in environment


def test_a_stale_or_missing_autograder_is_not_current(tmp_path):
    lab = labs.find_lab("lab09_gru_step")
    tests = lab.otter_tests()
    for name, files in (("current", tests), ("stale", tests | {"gru_step.py": tests["gru_step.py"] + "# edited\n"}),
                        ("short", {"gru_step.py": tests["gru_step.py"]})):
        with zipfile.ZipFile(tmp_path / f"{name}.zip", "w") as archive:
            for file, source in files.items():
                archive.writestr(f"tests/{file}", source)
        assert labs.autograder_is_current(lab, tmp_path / f"{name}.zip") == (name == "current")
    assert not labs.autograder_is_current(lab, tmp_path / "missing.zip")
    (tmp_path / "broken.zip").write_text("not a zip")
    assert not labs.autograder_is_current(lab, tmp_path / "broken.zip")


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.name)
def test_each_question_heading_gives_the_points_its_checks_are_worth(lab):
    """Otter's check output shows no points: the headings are where students read them."""
    headings = [int(points) for cell in lab.of_kind("markdown")
                for points in re.findall(r"^## Question \d+: .* \((\d+) points?\)$", cell.source, re.M)]
    worth = [sum(row[1] for row in rows) for rows in labs.grade_answers(lab, lab.reference_answers()).values()]
    assert headings == worth


def test_checks_restore_what_they_guard_and_leave_the_random_state_alone():
    import torch

    lab = labs.find_lab("lab06_lstm_step")
    originals = (torch.lstm_cell, torch.nn.LSTM, torch.Tensor.backward)
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    labs.grade_answers(lab, labs.plant(lab, next(m for m in lab.mistakes() if "own cell" in m["name"])))
    assert torch.equal(torch.rand(3), expected)  # the checks seed their own generator, in a forked state
    assert (torch.lstm_cell, torch.nn.LSTM, torch.Tensor.backward) == originals


@pytest.mark.parametrize("lab, mistake", MISTAKES, ids=[f"{lab.name}-{m['name']}" for lab, m in MISTAKES])
def test_every_failed_check_speaks_to_the_student(lab, mistake):
    """No check of a planted mistake fails by an error of the checks themselves: an exception
    message is only shown when it comes from the student's code (which the message locates)."""
    import re

    results = labs.grade_answers(lab, labs.plant(lab, mistake))
    for question, rows in results.items():
        for title, _, earned, message in rows:
            if not earned:
                assert not re.match(r"\w+(Error|Exception): ", message) or "(raised at line" in message, \
                    (question, title, message)


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.name)
def test_run_all_on_the_student_copy(lab, tmp_path, monkeypatch):
    """"Run all" on the notebook as handed out, opened on its own (no tests/ beside it): the setup
    cell writes Otter's test files, no cell raises, and grader.check_all() gives zero; with the
    reference typed into the answer cells, full marks."""
    from IPython.core.inputtransformer2 import TransformerManager

    monkeypatch.chdir(tmp_path)
    possible = labs.score(labs.grade_answers(lab, lab.reference_answers()))[1]
    for filled in (False, True):
        nb = labs.notebook(lab)
        namespace = {"__name__": "__main__"}
        for index, cell in enumerate(nb["cells"]):
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            if filled and "answer" in cell["metadata"].get("lab", {}):
                source = lab.reference_answers()[cell["metadata"]["lab"]["answer"]]
            exec(compile(TransformerManager().transform_cell(source), f"<cell {index}>", "exec"), namespace)
        assert {path.name: path.read_text() for path in (tmp_path / "tests" / lab.name).iterdir()} \
            == lab.otter_tests()
        results = eval("grader.check_all()", namespace)  # Otter reads the caller's globals
        assert (results.total, results.possible) == ((possible if filled else 0), possible)
        checked = eval(f"grader.check({lab.questions[0]!r})", namespace)
        assert checked.passed_all == filled
        if not filled:
            assert "not implemented yet" in checked.summary()


def test_the_setup_cell_installs_otter_where_it_is_missing(tmp_path, monkeypatch):
    """As on Colab: Otter-Grader missing, the setup cell says so and installs the pinned version
    with %pip; if that fails (no network), it stops with what to install."""
    from IPython.core.inputtransformer2 import TransformerManager
    import importlib
    import importlib.util

    lab = labs.find_lab("lab09_gru_step")
    cell = next(c for c in labs.notebook(lab)["cells"] if "lab-setup" in c["metadata"].get("tags", []))
    setup = TransformerManager().transform_cell("".join(cell["source"]))
    assert labs.OTTER in (ROOT / "requirements.txt").read_text().splitlines()  # the version the book tests
    monkeypatch.chdir(tmp_path)
    real_find_spec = importlib.util.find_spec
    for install_works in (True, False):
        installed, magics = [], []

        class Shell:
            def run_line_magic(self, name, line):
                magics.append((name, line))
                installed.append(install_works)

        def find_spec(name, *args):
            return real_find_spec(name, *args) if name != "otter" or any(installed) else None

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)
        invalidated = []
        monkeypatch.setattr(importlib, "invalidate_caches", lambda: invalidated.append(len(magics)))
        stale = tmp_path / "tests" / lab.name / "gru_step.py"
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_text("# a test file from an older version of the lab\n")
        namespace = {"get_ipython": lambda: Shell()}
        if install_works:
            exec(setup, namespace)
            assert namespace["grader"]._tests_dir == f"tests/{lab.name}"
            assert stale.read_text() == lab.otter_tests()["gru_step.py"]  # replaced by the notebook's own
        else:
            with pytest.raises(ModuleNotFoundError, match=f"pip install {labs.OTTER}"):
                exec(setup, namespace)
        assert magics == [("pip", f"install --quiet {labs.OTTER}")]
        assert invalidated == [1]  # after installing, before looking for Otter again


def test_a_student_copy_checks_itself_in_a_jupyter_kernel(tmp_path):
    """What a student sees: the notebook alone in a folder, run in a kernel, one answer written."""
    import nbformat
    from nbclient import NotebookClient

    lab = labs.find_lab("lab02_rnn_step")
    nb = nbformat.reads(json.dumps(labs.notebook(lab)), as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("lab", {}).get("answer") == "rnn_step":
            cell.source = lab.reference_answers()["rnn_step"]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("grader.check("):
            shown[cell.source] = "".join(output.get("text", "") or output.get("data", {}).get("text/plain", "")
                                         for output in cell.outputs)
    assert "All test cases passed!" in shown['grader.check("rnn_step")']
    assert "not implemented yet (rnn_forward: " in shown['grader.check("rnn_forward")']
    assert sorted(path.name for path in (tmp_path / "tests" / lab.name).iterdir()) == sorted(lab.otter_tests())
