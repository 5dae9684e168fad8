"""A reader's first minutes on Colab, rehearsed here: does chapter 1 run from its launch button?

1. A fresh virtual environment gets what Colab has before a notebook runs: PyTorch
   and torchvision (the lock's versions) and a Jupyter kernel. Nothing else.
2. A copy of chapter 1 gets the launch cell (tools/setup_cell.py), with the
   repository's git URL replaced by this checkout's path (there is no GitHub here);
   the pip commands are otherwise the cell's own.
3. nbclient executes the copy in a kernel of that environment, from a scratch
   folder (Colab's /content). The launch cell finds no rnnbook, installs it with its
   `notebooks` extra from pyproject.toml, and the chapter carries on in the same
   kernel. The corpus is not there either: the chapter's loader downloads it from
   d2l's address into the per-user cache folder (XDG_CACHE_HOME), as it would on Colab;
   here the download goes through a stand-in for d2l's server on 127.0.0.1 (an
   HTTP proxy that answers with the local copy), since that address is not reachable.
4. It fails on any error in any cell, and reports which outputs differ from the book.

    python tools/check_install.py [--venv DIR] [--keep]

Takes several minutes and a few GB of disk (PyTorch), so it is `make check-install`,
not part of `make test`.
"""

import argparse
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import setup_cell  # noqa: E402

CHAPTER = next((ROOT / "notebooks").glob("01_*.ipynb"))
CORPUS = ROOT / "data" / "timemachine.txt"


def locked(name: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.lower().startswith(f"{name}=="):
            return line.split(";")[0].strip()
    raise KeyError(name)


def run(command, **kwargs):
    print("$", " ".join(map(str, command)), flush=True)
    subprocess.run(command, check=True, **kwargs)


class StandInForD2l(http.server.BaseHTTPRequestHandler):
    """Answers a proxied GET for d2l's timemachine.txt with the local copy; nothing else."""

    requests = []

    def do_GET(self):  # noqa: N802 (the http.server API)
        self.requests.append(self.path)
        if self.path.endswith("/timemachine.txt"):
            body = CORPUS.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


def source_tree(destination: Path) -> Path:
    """A copy of the files git tracks or would track (what a clone of this branch holds)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.splitlines()
    for name in listed:
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


def stream_text(cell) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", []) if out.get("output_type") == "stream")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "rnnbook-check-install")
    parser.add_argument("--keep", action="store_true", help="keep the environment and the executed copy")
    args = parser.parse_args(argv)
    if not CORPUS.is_file():
        sys.exit(f"{CORPUS} is missing: run `make data` first (the stand-in for d2l's server serves it)")
    started = time.perf_counter()
    venv = args.venv
    shutil.rmtree(venv, ignore_errors=True)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "venv", venv])
    run([python, "-m", "pip", "install", "--quiet", locked("torch"), locked("torchvision"), "ipykernel"])
    preinstalled = time.perf_counter()

    work = Path(tempfile.mkdtemp(prefix="rnnbook-colab-"))
    source = source_tree(work / "repository")
    content = work / "content"  # the kernel's folder, as Colab's /content
    content.mkdir()
    nb = nbformat.read(CHAPTER, as_version=4)
    committed = [stream_text(cell) for cell in nb.cells if cell.cell_type == "code"]
    if setup_cell.first_code_source(nb) != setup_cell.source_for(nb):
        committed.insert(0, "")  # the committed chapter has no launch cell yet
    setup_cell.insert_launch_cell(nb)
    launch = next(cell for cell in nb.cells if cell.cell_type == "code")
    pinned = f"rnnbook[notebooks] @ git+{setup_cell.REPOSITORY_URL}@v{setup_cell.book_version()}"
    assert pinned in launch.source, "the launch cell no longer installs the book's version from its repository"
    launch.source = launch.source.replace(pinned, f"rnnbook[notebooks] @ {source.as_uri()}")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInForD2l)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kernels = work / "kernels"
    run([python, "-m", "ipykernel", "install", "--prefix", kernels, "--name", "colab-like"],
        stdout=subprocess.DEVNULL)
    spec_file = kernels / "share" / "jupyter" / "kernels" / "colab-like" / "kernel.json"
    spec = json.loads(spec_file.read_text())
    cache = work / "cache"  # the kernel's per-user cache folder (XDG_CACHE_HOME), where the corpus goes
    spec["env"] = {"http_proxy": f"http://127.0.0.1:{server.server_address[1]}", "no_proxy": "localhost",
                   "XDG_CACHE_HOME": str(cache)}
    spec_file.write_text(json.dumps(spec))

    from nbclient import NotebookClient

    os.environ["JUPYTER_PATH"] = str(kernels / "share" / "jupyter")
    client = NotebookClient(nb, timeout=600, kernel_name="colab-like",
                            resources={"metadata": {"path": str(content)}})
    try:
        client.execute()
    finally:
        server.shutdown()
    executed = time.perf_counter()
    nbformat.write(nb, work / CHAPTER.name)

    corpus_there = (cache / "rnnbook" / "timemachine.txt").is_file()
    launch_output = stream_text(launch).strip()
    moved = [index for index, (cell, before) in enumerate(zip(
        [cell for cell in nb.cells if cell.cell_type == "code"], committed)) if index and stream_text(cell) != before]
    size = subprocess.run(["du", "-sm", venv], capture_output=True, text=True).stdout.split()[0]
    print(f"launch cell printed: {launch_output!r}")
    print(f"corpus requests to the stand-in for d2l's server: {StandInForD2l.requests}")
    print(f"corpus saved in the per-user cache folder: {corpus_there}")
    print(f"code cells whose printed text differs from the book's: {moved or 'none'}")
    print(f"times: PyTorch preinstalled {preinstalled - started:.0f} s, launch cell and chapter 1 "
          f"{executed - preinstalled:.0f} s; environment {size} MB")
    if not args.keep:
        shutil.rmtree(venv, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept: {venv} and {work}")
    if not corpus_there or not StandInForD2l.requests:
        print("FAILED: the corpus did not come through the loader's download", file=sys.stderr)
        return 1
    print("chapter 1 ran in a fresh environment installed by its launch cell")
    return 0


if __name__ == "__main__":
    sys.exit(main())
