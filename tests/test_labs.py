"""The labs (labs/, tools/labs.py): every lab's reference scores full marks, its stub
zero, each planted common mistake fails the check meant for it, and the notebooks
`make labs` writes are graded the same way from the command line."""

import csv
import importlib.util
import json
import subprocess
import sys

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


def test_grader_helpers(capsys):
    namespace = {"__name__": "lab_test"}
    exec(labs.GRADER.read_text(), namespace)
    with pytest.raises(ValueError, match="positive integer"):
        namespace["check_of"]("q", 0, "zero points")

    def broken(x):
        return [][x]  # an IndexError inside the student's function

    namespace["broken"] = broken

    @namespace["check_of"]("q", 2, "passes")
    def _(ns):
        return None

    @namespace["check_of"]("q", 1, "student code raises")
    def _(ns):
        namespace["call"](ns, "broken", 3)

    @namespace["check_of"]("q", 1, "names the mistake")
    def _(ns):
        import torch
        namespace["diagnose"](torch.ones(2), torch.zeros(2), {"all ones: subtract one": torch.ones(2)}, "differs")

    assert namespace["check"]("q", namespace) == (2, 4)
    printed = capsys.readouterr().out
    assert "q: 2/4 points" in printed and "PASS [2] passes" in printed
    assert "IndexError: list index out of range (raised at line" in printed and "of broken)" in printed
    assert "differs (largest difference 1): all ones: subtract one" in printed
    assert namespace["grade"](namespace) == {"q": (2, 4)}
    assert "total  2/4" in capsys.readouterr().out


def test_built_notebooks_need_no_torch_and_hide_the_solutions(tmp_path):
    # Building imports nothing but the standard library: run it with torch made unimportable.
    code = (f"import runpy, sys; sys.modules['torch'] = None; sys.argv = ['labs.py', 'build', {str(tmp_path)!r}]; "
            f"runpy.run_path({str(ROOT / 'tools' / 'labs.py')!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for lab in LABS:
        student = json.loads((tmp_path / f"{lab.name}.ipynb").read_text())
        reference = json.loads((tmp_path / "solutions" / f"{lab.name}.ipynb").read_text())
        assert student["nbformat"] == 4 and student["metadata"]["lab"]["name"] == lab.name
        code_cells = [cell for cell in student["cells"] if cell["cell_type"] == "code"]
        assert code_cells[0]["metadata"]["tags"] == ["lab-grader"]  # first, folded
        # The student's grader cell carries the checks compressed, and runs them.
        grader = {}
        exec("".join(code_cells[0]["source"]), grader)
        assert grader["_zlib"].decompress(grader["_base64"].b64decode(grader["_CHECKS_SOURCE"])).decode() \
            == lab.grader_source()
        assert set(grader["questions"]()) == set(lab.questions)
        lines = {line for cell in student["cells"] for line in "".join(cell["source"]).splitlines()}
        assert not any("BEGIN SOLUTION" in line or "MISTAKES" in line for line in lines)
        for question, answer in lab.reference_answers().items():
            cell = next(c for c in student["cells"] if c["metadata"].get("lab", {}).get("answer") == question)
            assert "".join(cell["source"]) == labs.stub(lab.answer(question))
            assert "raise NotImplementedError" in "".join(cell["source"])
            solution_lines = set(answer.splitlines()) - set(labs.stub(lab.answer(question)).splitlines())
            assert solution_lines and not solution_lines & lines, question
            ref_cell = next(c for c in reference["cells"] if c["metadata"].get("lab", {}).get("answer") == question)
            assert "".join(ref_cell["source"]) == answer


def test_answers_are_found_by_metadata_then_by_definition(tmp_path):
    lab = labs.find_lab("lab09_gru_step")
    nb = labs.notebook(lab, reference=True)
    for cell in nb["cells"]:  # an editor that drops cell metadata
        cell["metadata"] = {}
    nb["cells"].append({"cell_type": "code", "metadata": {}, "source": "print('scratch work')", "outputs": []})
    path = tmp_path / "copy.ipynb"
    path.write_text(json.dumps(nb))
    answers = labs.answers_from_notebook(lab, labs.read_notebook(path))
    assert answers == lab.reference_answers()
    partial = labs.grade_answers(lab, {"gru_step": answers["gru_step"]})
    assert labs.score({"gru_step": partial["gru_step"]}) == (6, 6)
    assert all(message.startswith("no answer cell found") for *_, message in partial["gru_forward"])


def test_an_answer_cell_that_does_not_run_scores_zero_with_its_error():
    lab = labs.find_lab("lab02_rnn_step")
    answers = lab.reference_answers() | {"rnn_step": "def rnn_step(x, h,\n"}
    results = labs.grade_answers(lab, answers)
    assert all(earned == 0 for _, _, earned, _ in results["rnn_step"])
    assert results["rnn_step"][0][3].startswith("the answer cell raised SyntaxError")
    assert labs.strip_magics("%pip install torch\nx = 1") == "# %pip install torch\nx = 1"


def test_command_line_grades_a_folder_of_submissions(tmp_path):
    lab = labs.find_lab("lab06_lstm_step")
    done_nb = labs.notebook(lab, reference=True)
    mistake = lab.mistakes()[0]
    planted_nb = labs.notebook(lab, reference=True)
    for cell in planted_nb["cells"]:
        if cell["metadata"].get("lab", {}).get("answer") == mistake["question"]:
            cell["source"] = labs.plant(lab, mistake)[mistake["question"]]
    lost = {key: value for key, value in labs.notebook(lab)["metadata"].items() if key != "lab"}
    paths = []  # each graded notebook costs a process that imports PyTorch: three here, the stub in-process
    for name, nb in (("done", done_nb), ("planted", planted_nb), ("unknown", {"cells": [], "metadata": lost})):
        paths.append(tmp_path / f"{name}.ipynb")
        paths[-1].write_text(json.dumps(nb))
    table = tmp_path / "grades.csv"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "labs.py"), "grade", *map(str, paths),
                           "--csv", str(table)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1  # one notebook could not be graded
    assert f"{paths[0]} (lab06_lstm_step): 10/10" in done.stdout
    assert f"{paths[1]} (lab06_lstm_step): 2/10" in done.stdout
    assert "forget gate's nonlinearity (sigmoid)" in done.stdout
    assert f"{paths[2]}: could not be graded" in done.stdout and "pass --lab NAME" in done.stdout
    rows = list(csv.DictReader(table.open()))
    earned = {(row["notebook"], row["question"]): int(row["earned"]) for row in rows}
    assert earned[(str(paths[0]), "lstm_step")] == 6
    assert earned[(str(paths[1]), "lstm_forward")] == 1  # only the ValueError check is independent of the step
    assert earned[(str(paths[1]), "lstm_step")] == 1
    assert "forget gate" in next(row["failed checks"] for row in rows if row["notebook"] == str(paths[1]))


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
def test_run_all_on_the_student_copy(lab, capsys):
    """"Run all" on the notebook as handed out: no cell raises and grade() prints zero; with the
    reference typed into the answer cells, full marks (the grader cell's compressed checks included)."""
    for filled in (False, True):
        nb = labs.notebook(lab)
        namespace = {"__name__": "__main__"}
        for index, cell in enumerate(nb["cells"]):
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            if filled and "answer" in cell["metadata"].get("lab", {}):
                source = lab.reference_answers()[cell["metadata"]["lab"]["answer"]]
            exec(compile(source, f"<cell {index}>", "exec"), namespace)
        possible = sum(namespace["questions"]().values())
        printed = capsys.readouterr().out
        assert printed.rstrip().splitlines()[-1].split() == ["total", f"{possible if filled else 0}/{possible}"]
        assert ("FAIL" in printed) != filled
