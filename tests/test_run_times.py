"""How long each chapter takes to run: the recorded times (book/_run_times.json), the page
rendered from them (book/run_times.md, tools/run_times.py), and their recording by
tools/execute_notebooks.py."""

import json
import sys
from html import unescape

import nbformat
import pytest
import yaml

from conftest import ROOT, chapter_notebooks

sys.path.insert(0, str(ROOT / "tools"))
import run_times  # noqa: E402


def entry(**changes):
    base = {"seconds": 80.1, "cpu_model": "AMD EPYC", "cores": 2, "jobs": 2,
            "cpu_config": {"ATEN_CPU_CAPABILITY": "default"}, "date": "2026-12-05"}
    return base | changes


def test_every_chapter_has_a_recorded_time_and_nothing_else_does():
    recorded = run_times.load()["notebooks"]
    stems = [path.stem for path in chapter_notebooks()]
    missing = [stem for stem in stems if stem not in recorded]
    assert not missing, f"no run time for {missing}: run tools/execute_notebooks.py on them"
    assert sorted(recorded) == stems, f"times recorded for notebooks that do not exist: {set(recorded) - set(stems)}"
    assert all(recorded[stem]["seconds"] > 0 for stem in stems)


def test_the_page_matches_the_recorded_times():
    page = (ROOT / "book" / "run_times.md").read_text()
    assert page == run_times.render(run_times.load(), run_times.chapters()), \
        "book/run_times.md is stale: run `python tools/run_times.py --write`"
    assert run_times.main(["--check"]) == 0
    for stem, seconds in ((stem, value["seconds"]) for stem, value in run_times.load()["notebooks"].items()):
        assert f"{{doc}}`../notebooks/{stem}` | {run_times.duration(seconds)} |" in page, stem
    assert run_times.load()["notebooks"]["01_sequences_and_language_models"]["cpu_model"] in page


def test_the_built_page_names_every_chapter_and_the_cpu():
    html = ROOT / "_build" / "html" / "book" / "run_times.html"
    if not html.parent.parent.joinpath("index.html").is_file():
        pytest.fail("no built book in _build/html: run `make book` (make test does)")
    page = unescape(html.read_text()).replace("\u2019", "'")  # Sphinx's curly apostrophes
    for stem, title in run_times.chapters():
        assert f'href="../notebooks/{stem}.html"' in page and title in page, f"{stem}: no link to the chapter"
    assert run_times.load()["notebooks"]["01_sequences_and_language_models"]["cpu_model"] in page


def test_the_page_is_an_appendix():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    appendices = next(part for part in toc["parts"] if part["caption"] == "Appendices")
    assert {"file": "book/run_times"} in appendices["chapters"]


@pytest.mark.parametrize("seconds, words", [(0.2, "1 s"), (42.4, "42 s"), (59.4, "59 s"), (59.6, "1 min"),
                                            (80.1, "1 min 20 s"), (244.2, "4 min 05 s"), (3600, "60 min")])
def test_durations_are_written_for_a_reader(seconds, words):
    assert run_times.duration(seconds) == words


def test_a_chapter_without_a_time_is_an_error_that_says_what_to_run():
    times = {"notebooks": {"01_a": entry()}}
    with pytest.raises(ValueError, match=r"no recorded time for \['02_b'\].*execute_notebooks"):
        run_times.render(times, [("01_a", "A"), ("02_b", "B")])


def test_one_way_of_measuring_is_said_once_several_are_listed():
    same = run_times.render({"notebooks": {"01_a": entry(), "02_b": entry(seconds=10)}}, [("01_a", "A"), ("02_b", "B")])
    assert "Every time below was measured on a 2-core AMD EPYC, two notebooks run at a time" in same
    assert "`ATEN_CPU_CAPABILITY=default`" in same and "| 2 | {doc}`../notebooks/02_b` | 10 s |" in same
    assert "| | All chapters (the sum) | 1 min 30 s |" in same
    mixed = run_times.render({"notebooks": {"01_a": entry(), "02_b": entry(jobs=1, cpu_config={})}},
                             [("01_a", "A"), ("02_b", "B")])
    assert "| 1 | {doc}`../notebooks/01_a` | 1 min 20 s | (1) |" in mixed
    assert "| 2 | {doc}`../notebooks/02_b` | 1 min 20 s | (2) |" in mixed
    assert "(2) Measured on a 2-core AMD EPYC, one notebook at a time, with the kernels PyTorch chooses" in mixed


@pytest.mark.parametrize("bad", [entry(seconds=0), entry(jobs=True), entry(cores="2"), {"seconds": 3.0}])
def test_malformed_times_are_refused_with_the_notebook_named(bad):
    with pytest.raises(ValueError, match="01_a needs"):
        run_times.validate({"notebooks": {"01_a": bad}})


def test_record_and_save_round_trip(tmp_path):
    times = {"notebooks": {}}
    run_times.record(times, "02_b", 12.345, cpu_config={}, cpu_model="CPU", cores=2, jobs=1, date="2026-01-01")
    run_times.record(times, "01_a", 3.0, cpu_config={"A": "1"}, cpu_model="CPU", cores=2, jobs=2, date="2026-01-01")
    run_times.record(times, "02_b", 20.0, cpu_config={}, cpu_model="CPU", cores=2, jobs=1, date="2026-01-02")
    run_times.save(times, tmp_path / "t.json")
    loaded = run_times.load(tmp_path / "t.json")
    assert list(loaded["notebooks"]) == ["01_a", "02_b"] and loaded["notebooks"]["02_b"]["seconds"] == 20.0
    assert loaded["notebooks"]["02_b"]["date"] == "2026-01-02"


LOG = """corpus: /x/data/timemachine.txt
CPU configuration: ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE
[IPKernelApp] WARNING | Kernel is running over TCP without encryption.
   20.1 s  01_a.ipynb
  244.2 s  02_b.ipynb
           cell  33 (code 18): needs rtol 0.015 or atol 0.09; declares {'rtol': 0.05, 'atol': 0.0}; ok
  264.3 s  total (2 notebooks, ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE)
CPU configuration: native
    9.5 s  01_a.ipynb
"""


def test_a_saved_log_is_read_block_by_block():
    blocks = run_times.parse_log(LOG)
    assert blocks == [({"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}, {"01_a": 20.1, "02_b": 244.2}),
                      ({}, {"01_a": 9.5})]


def test_from_log_records_one_block(tmp_path):
    (tmp_path / "log").write_text(LOG)
    times = tmp_path / "t.json"
    run_times.main(["--from-log", str(tmp_path / "log"), "--config", "2", "--times", str(times),
                    "--page", str(tmp_path / "p.md"), "--date", "2026-12-05"])
    recorded = json.loads(times.read_text())["notebooks"]
    assert recorded == {"01_a": {"seconds": 9.5, "cpu_config": {}, "cpu_model": run_times.cpu_model(),
                                 "cores": recorded["01_a"]["cores"], "jobs": 2, "date": "2026-12-05"}}
    assert run_times.main(["--from-log", str(tmp_path / "log"), "--config", "3", "--times", str(times)]) == 1


def test_no_record_leaves_the_times_alone(tmp_path, monkeypatch):
    import execute_notebooks

    monkeypatch.setattr(execute_notebooks, "run_one", lambda job: (job[0], 1.5, None))  # no kernel
    monkeypatch.setattr(execute_notebooks, "ProcessPoolExecutor", FakePool)
    times = tmp_path / "times.json"
    assert execute_notebooks.main(["--no-record", "--times", str(times), str(tmp_path / "01_a.ipynb")]) == 0
    assert not times.exists()
    assert execute_notebooks.main(["--times", str(times), "--page", str(tmp_path / "p.md"),
                                   str(tmp_path / "01_a.ipynb")]) == 0
    assert json.loads(times.read_text())["notebooks"]["01_a"]["seconds"] == 1.5


class FakePool:
    """ProcessPoolExecutor's interface, running in this process."""

    def __init__(self, max_workers):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, function, jobs):
        return map(function, jobs)


def test_executing_a_notebook_records_its_time(tmp_path):
    import execute_notebooks  # tools/ is on sys.path; a worker process unpickles its run_one by name
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(0.3)\nprint('ran')")]
    path = tmp_path / "99_tiny.ipynb"
    nbformat.write(nb, path)
    times, page = tmp_path / "times.json", tmp_path / "page.md"
    assert execute_notebooks.main(["--cpu-config", "ATEN_CPU_CAPABILITY=default", "--jobs", "2",
                                   "--times", str(times), "--page", str(page), str(path)]) == 0
    recorded = json.loads(times.read_text())["notebooks"]["99_tiny"]
    assert 0.3 < recorded["seconds"] < 60
    assert recorded["cpu_config"] == {"ATEN_CPU_CAPABILITY": "default"} and recorded["jobs"] == 1
    assert recorded["cpu_model"] == run_times.cpu_model()
    assert not page.exists(), "a page with the chapters' times missing must not be written"
