"""How long each chapter takes to run: the measured times, and the page that shows them.

tools/execute_notebooks.py records each notebook's wall-clock time, with the CPU, its
core count, how many notebooks ran at once and the CPU configuration (which kernels
PyTorch, MKL and oneDNN used), in book/_run_times.json whenever it executes or
compares notebooks; this tool renders book/run_times.md from that file. A test
(tests/test_run_times.py) checks that the page matches the file and that every
chapter has a time.

    python tools/run_times.py --write      # render book/run_times.md from the JSON
    python tools/run_times.py --check      # exit 1 if the page is stale or a chapter has no time
    python tools/run_times.py --from-log LOG [--config N]   # record the times that a saved
        # output of execute_notebooks.py printed (its N-th "CPU configuration" block, from 1)
"""

import argparse
import datetime
import json
import os
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
TIMES = ROOT / "book" / "_run_times.json"
PAGE = ROOT / "book" / "run_times.md"
FIELDS = {"seconds": (int, float), "cpu_model": str, "cores": int, "jobs": int, "cpu_config": dict, "date": str}


def load(path: Path = TIMES) -> dict:
    """The recorded times (``{"notebooks": {stem: entry}}``), validated; empty if no file."""
    if not path.exists():
        return {"notebooks": {}}
    times = json.loads(path.read_text(encoding="utf-8"))
    validate(times, path)
    return times


def validate(times: dict, where="run times") -> None:
    """Raise ValueError naming the first entry that lacks a field or has the wrong type."""
    if not isinstance(times, dict) or not isinstance(times.get("notebooks"), dict):
        raise ValueError(f"{where}: expected an object with a 'notebooks' object, got {str(times)[:80]}")
    for stem, entry in times["notebooks"].items():
        for field, kind in FIELDS.items():
            if not isinstance(entry, dict) or not isinstance(entry.get(field), kind) or isinstance(entry.get(field), bool):
                raise ValueError(f"{where}: {stem} needs {field!r} of type {kind}, got {entry!r}")
        if not entry["seconds"] > 0 or entry["cores"] < 1 or entry["jobs"] < 1:
            raise ValueError(f"{where}: {stem} needs seconds > 0, cores >= 1 and jobs >= 1, got {entry!r}")


def record(times: dict, stem: str, seconds: float, *, cpu_config: dict, cpu_model: str,
           cores: int, jobs: int, date: str | None = None) -> None:
    """Set notebook ``stem``'s time in ``times`` (in place), replacing an older one."""
    date = date or datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    times.setdefault("notebooks", {})[stem] = {
        "seconds": round(float(seconds), 1), "cpu_model": cpu_model, "cores": cores, "jobs": jobs,
        "cpu_config": dict(cpu_config), "date": date}
    validate(times)


def save(times: dict, path: Path = TIMES) -> None:
    validate(times, path)
    ordered = {"notebooks": dict(sorted(times["notebooks"].items()))}
    path.write_text(json.dumps(ordered, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def chapters(notebook_dir: Path = NOTEBOOK_DIR) -> list:
    """``(stem, title)`` of every chapter notebook, in order; the title is its first heading."""
    found = []
    for path in sorted(notebook_dir.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        title = next((line[2:].strip() for cell in nb.cells if cell.cell_type == "markdown"
                      for line in cell.source.splitlines() if line.startswith("# ")), None)
        if title is None:
            raise ValueError(f"{path.name} has no '# title' heading")
        found.append((path.stem, title))
    return found


def duration(seconds: float) -> str:
    """``42 s`` below a minute, else minutes and seconds to the nearest 5 s (``3 min 05 s``)."""
    if seconds < 59.5:
        return f"{max(1, round(seconds))} s"
    rounded = int(5 * round(seconds / 5))
    minutes, rest = divmod(rounded, 60)
    return f"{minutes} min" if rest == 0 else f"{minutes} min {rest:02d} s"


def conditions(entry: dict) -> str:
    """How an entry was measured, in words."""
    at_once = {1: "one notebook at a time", 2: "two notebooks run at a time"}.get(
        entry["jobs"], f"{entry['jobs']} notebooks run at a time")
    cores = {1: "a 1-core", 2: "a 2-core"}.get(entry["cores"], f"a {entry['cores']}-core")
    config = " ".join(f"`{key}={value}`" for key, value in entry["cpu_config"].items())
    kernels = (f"with the kernels chosen by {config}" if config
               else "with the kernels PyTorch chooses for this CPU by default")
    return f"on {cores} {entry['cpu_model']}, {at_once}, {kernels} (measured {entry['date']})"


def render(times: dict, chapter_list: list) -> str:
    """The page's Markdown. Raises ValueError if a chapter has no recorded time."""
    validate(times)
    entries = times["notebooks"]
    missing = [stem for stem, _ in chapter_list if stem not in entries]
    if missing:
        raise ValueError(f"no recorded time for {missing}: run `python tools/execute_notebooks.py` on them "
                         "(it records each notebook's time in book/_run_times.json)")
    ways = []  # each distinct measurement condition, in the order the chapters first use it
    for stem, _ in chapter_list:
        words = conditions(entries[stem])
        if words not in ways:
            ways.append(words)
    total = sum(entries[stem]["seconds"] for stem, _ in chapter_list)
    lines = [
        "# How long each chapter takes to run",
        "",
        "The time to execute each chapter's notebook from top to bottom in a fresh kernel,",
        "on a CPU: loading data, training every model, timing and plotting. Reading a",
        "chapter online, or opening its notebook with the committed outputs, computes nothing.",
        "",
    ]
    if len(ways) == 1:
        lines += [f"Every time below was measured {ways[0]}.", ""]
    else:
        lines += ["The times were measured in different ways, listed under the table.", ""]
    lines += ["| Chapter | Title | Run time |" + (" Measured |" if len(ways) > 1 else ""),
              "|---:|:---|---:|" + ("---:|" if len(ways) > 1 else "")]
    for number, (stem, _) in enumerate(chapter_list, start=1):
        row = f"| {number} | {{doc}}`../notebooks/{stem}` | {duration(entries[stem]['seconds'])} |"
        if len(ways) > 1:
            row += f" ({ways.index(conditions(entries[stem])) + 1}) |"
        lines.append(row)
    lines += [f"| | All chapters (the sum) | {duration(total)} |" + (" |" if len(ways) > 1 else ""), ""]
    if len(ways) > 1:
        for index, words in enumerate(ways, start=1):
            lines += [f"({index}) Measured {words}.", ""]
    lines += [
        "Each chapter computes on one thread (`rnnbook.setup_notebook` sets it), so two",
        "notebooks run at a time keep both cores busy; a chapter run alone may finish",
        "sooner, and a slower or busier machine takes longer.",
        "The kernel settings are how the book checks that its results hold on other CPUs",
        "({doc}`checking`): they choose which PyTorch, MKL and oneDNN kernels compute the",
        "same operations, and can make a chapter faster or slower than with the CPU's own.",
        "",
        "This page is generated: `tools/execute_notebooks.py` records each notebook's time",
        "in `book/_run_times.json` when it runs, and `python tools/run_times.py --write`",
        "renders this table from that file.",
        "",
    ]
    return "\n".join(lines)


def parse_log(text: str) -> list:
    """The blocks of a saved execute_notebooks.py output: ``[(config, {stem: seconds})]``,
    ``config`` as a dict (empty for native), one block per "CPU configuration" line."""
    blocks = []
    for line in text.splitlines():
        header = re.match(r"CPU configuration: (.*)$", line)
        if header:
            words = header.group(1).strip()
            config = {} if words == "native" else dict(word.split("=", 1) for word in words.split())
            blocks.append((config, {}))
            continue
        timing = re.match(r"\s*(\d+(?:\.\d+)?) s  (\S+)\.ipynb$", line)
        if timing and blocks:
            blocks[-1][1][timing.group(2)] = float(timing.group(1))
    return blocks


def cpu_model() -> str:
    from rnnbook.portability import cpu_model as model

    return model()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="render the page from the JSON")
    action.add_argument("--check", action="store_true", help="fail if the page is stale")
    action.add_argument("--from-log", type=Path, help="record the times of a saved execute_notebooks.py output")
    parser.add_argument("--config", type=int, default=1, help="with --from-log: which configuration block (from 1)")
    parser.add_argument("--jobs", type=int, default=2, help="with --from-log: notebooks that ran at once")
    parser.add_argument("--date", help="with --from-log: the day of the measurement (default today, UTC)")
    parser.add_argument("--times", type=Path, default=TIMES)
    parser.add_argument("--page", type=Path, default=PAGE)
    args = parser.parse_args(argv)
    times = load(args.times)
    if args.from_log:
        blocks = parse_log(args.from_log.read_text(encoding="utf-8"))
        if not 1 <= args.config <= len(blocks):
            print(f"{args.from_log} has {len(blocks)} configuration block(s); --config {args.config} is not one",
                  file=sys.stderr)
            return 1
        config, measured = blocks[args.config - 1]
        for stem, seconds in measured.items():
            record(times, stem, seconds, cpu_config=config, cpu_model=cpu_model(), cores=os.cpu_count() or 1,
                   jobs=args.jobs, date=args.date)
            print(f"{seconds:7.1f} s  {stem}")
        save(times, args.times)
    try:
        page = render(times, chapters())
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    if args.check:
        if not args.page.exists() or args.page.read_text(encoding="utf-8") != page:
            print(f"{args.page} does not match {args.times}: run `python tools/run_times.py --write`", file=sys.stderr)
            return 1
        return 0
    args.page.write_text(page, encoding="utf-8")
    print(f"wrote {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
