"""Re-execute chapter notebooks, or measure how far a re-execution moves their outputs.

Executing is what CI repeats with ``pytest --nbval``: the same kernel (the current
environment's Python), the same working directory (``notebooks/``) and a clean
kernel per notebook. Each notebook's wall-clock time is printed, which is how the
book's per-chapter budget is checked, and recorded (with the CPU, the number of
notebooks run at once and the CPU configuration) in book/_run_times.json, from which
tools/run_times.py renders the page "How long each chapter takes to run" (rendered
again here after each run; ``--no-record`` leaves both alone).

    python tools/execute_notebooks.py                        # every notebook, in place
    python tools/execute_notebooks.py notebooks/01_*.ipynb   # some of them
    python tools/execute_notebooks.py --jobs 2               # two at a time, as CI does

``--cpu-config foreign`` runs the kernels under the foreign CPU configuration that
``make test`` validates with (``rnnbook.portability.foreign_cpu_config()``);
``--cpu-config NAME=VALUE,...`` under any other. ``--compare`` leaves the notebooks
as they are (it records only their run times): it reports, cell by cell, how the
fresh outputs differ from the committed ones, the tolerance each differing cell
would need, and whether the tolerance it declares covers the difference. That is how a cell's tolerance is chosen (the smallest that
passes across configurations) and how portability is checked in both directions.
"""

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from rnnbook.portability import (CPU_CONFIG_VARIABLES, cell_tolerance, compare_text, comparable_texts,
                                 cpu_model, deviation, foreign_cpu_config)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_times  # noqa: E402  (tools/run_times.py)

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
CELL_TIMEOUT_S = 600
KERNEL_START_ATTEMPTS = 3  # two kernels started at once can collide on a TCP port


def parse_cpu_config(text: str) -> dict:
    """``native`` -> {}, ``foreign`` -> the foreign configuration, else ``A=1,B=2``."""
    if text == "native":
        return {}
    if text == "foreign":
        return foreign_cpu_config()
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if not pairs or any(len(pair) != 2 or not pair[0] for pair in pairs):
        raise argparse.ArgumentTypeError(f"expected native, foreign or NAME=VALUE[,NAME=VALUE], got {text!r}")
    return dict(pairs)


def execute(path: Path, cpu_config: dict) -> tuple[nbformat.NotebookNode, float]:
    """Execute ``path`` top to bottom in a fresh kernel under ``cpu_config``.

    Returns the executed notebook and the seconds it took. The configuration's
    variables are set in this process's environment, which the kernel inherits;
    the other variables of ``CPU_CONFIG_VARIABLES`` are removed.
    """
    for key in CPU_CONFIG_VARIABLES:
        os.environ.pop(key, None)
    os.environ.update(cpu_config)
    for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
        notebook = nbformat.read(path, as_version=4)
        client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}}, record_timing=False)
        start = time.perf_counter()
        try:
            client.execute()
        except RuntimeError as error:  # the kernel never answered: start it again
            if "didn't respond" not in str(error) or attempt == KERNEL_START_ATTEMPTS:
                raise
            continue
        notebook.metadata.pop("widgets", None)
        return notebook, time.perf_counter() - start


def compare_cells(committed, fresh) -> list[dict]:
    """One record per code cell whose fresh outputs differ from the committed ones."""
    records = []
    code_index = -1
    for index, (old, new) in enumerate(zip(committed.cells, fresh.cells)):
        if old.cell_type != "code":
            continue
        code_index += 1
        tags = old.metadata.get("tags", [])
        if "nbval-ignore-output" in tags or "nbval-skip" in tags:
            continue
        old_texts, new_texts = comparable_texts(old.outputs), comparable_texts(new.outputs)
        if old_texts == new_texts:
            continue
        tolerance = cell_tolerance(old.metadata)
        record = {"cell": index, "code_cell": code_index, "rtol": 0.0, "atol": 0.0, "text_differs": False,
                  "declared": None if tolerance is None else {"rtol": tolerance.rtol, "atol": tolerance.atol},
                  "passes": True, "why": ""}
        if [label for label, _ in old_texts] != [label for label, _ in new_texts]:
            record.update(text_differs=True, passes=False, why="different kinds of output")
        for (label, ours), (_, theirs) in zip(old_texts, new_texts):
            spread = deviation(ours, theirs)
            if spread is None:
                record.update(text_differs=True)
            else:
                record["rtol"], record["atol"] = max(record["rtol"], spread[0]), max(record["atol"], spread[1])
            why = compare_text(ours, theirs, tolerance)
            if why:
                record.update(passes=False, why=f"{label}: {why}")
        records.append(record)
    return records


def run_one(job):
    path, cpu_config, compare = job
    fresh, seconds = execute(path, cpu_config)
    if compare:
        return path, seconds, compare_cells(nbformat.read(path, as_version=4), fresh)
    nbformat.write(fresh, path)
    return path, seconds, None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--cpu-config", type=parse_cpu_config, default={},
                        help="native (default), foreign, or NAME=VALUE[,NAME=VALUE]")
    parser.add_argument("--compare", action="store_true",
                        help="leave the notebooks alone; report how fresh outputs differ from the committed ones")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks executed at once (default 1)")
    parser.add_argument("--json", type=Path, help="with --compare, also write the records to this file")
    parser.add_argument("--no-record", action="store_true",
                        help="do not record the run times in book/_run_times.json nor render their page")
    parser.add_argument("--times", type=Path, default=run_times.TIMES, help=argparse.SUPPRESS)
    parser.add_argument("--page", type=Path, default=run_times.PAGE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    config_words = " ".join(f"{key}={value}" for key, value in args.cpu_config.items()) or "native"
    print(f"CPU configuration: {config_words}", flush=True)
    jobs = [(path, args.cpu_config, args.compare) for path in paths]
    total, failures, report = 0.0, 0, {}
    times = None if args.no_record else run_times.load(args.times)
    measured = {"cpu_config": args.cpu_config, "cpu_model": cpu_model(), "cores": os.cpu_count() or 1,
                "jobs": max(1, min(args.jobs, len(paths)))}
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for path, seconds, records in pool.map(run_one, jobs):
            total += seconds
            print(f"{seconds:7.1f} s  {path.name}", flush=True)
            if times is not None:
                run_times.record(times, path.stem, seconds, **measured)
                run_times.save(times, args.times)  # after each notebook: a later failure keeps it
            if records is None:
                continue
            report[path.name] = records
            for record in records:
                failures += not record["passes"]
                declared = record["declared"] or "exact"
                verdict = "ok" if record["passes"] else f"FAILS: {record['why']}"
                needs = "text differs" if record["text_differs"] else \
                    f"needs rtol {record['rtol']:.2g} or atol {record['atol']:.2g}"
                print(f"           cell {record['cell']:3d} (code {record['code_cell']:2d}): {needs}; "
                      f"declares {declared}; {verdict}", flush=True)
    print(f"{total:7.1f} s  total ({len(paths)} notebooks, {config_words})")
    if times is not None:
        try:
            args.page.write_text(run_times.render(times, run_times.chapters()), encoding="utf-8")
            print(f"run times recorded in {args.times}; {args.page} rendered")
        except ValueError as error:  # a chapter has no time yet: the JSON is kept, the page is not
            print(f"run times recorded in {args.times}; {args.page} not rendered: {error}")
    if args.compare:
        if args.json:
            args.json.write_text(json.dumps({"cpu_config": args.cpu_config, "notebooks": report}, indent=1))
        print(f"{failures} cell(s) would fail validation" if failures else "every cell would pass validation")
        return 1 if failures else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
