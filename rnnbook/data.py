"""Finding, verifying and (when online) downloading the book's data files.

The running corpus is H. G. Wells' *The Time Machine*, the very file that Dive into
Deep Learning's ``d2l.TimeMachine`` downloads, so vocabularies and results are
comparable with that book. The file is never committed: it is looked up in the
project's ``data/`` folder (or the folder named by ``RNNBOOK_DATA_DIR``), checked
against its SHA-1, and downloaded from d2l's address only when it is missing.
"""

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

TIME_MACHINE_FILE = "timemachine.txt"
TIME_MACHINE_URL = "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
TIME_MACHINE_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"
DATA_DIR_ENV = "RNNBOOK_DATA_DIR"


class DataFileError(RuntimeError):
    """A data file is missing and cannot be fetched, or its contents are wrong."""


def data_dir() -> Path:
    """The folder that holds data files: ``$RNNBOOK_DATA_DIR`` or ``<project>/data``."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parent.parent / "data"


def sha1_of_bytes(content: bytes) -> str:
    """Hex SHA-1 digest of ``content``."""
    return hashlib.sha1(content).hexdigest()


def _download(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def fetch_time_machine(directory=None, *, download: bool = True, timeout: float = 30.0) -> Path:
    """Return the path of a verified copy of *The Time Machine*.

    Looks in ``directory`` (default :func:`data_dir`). A file that is present but
    has the wrong SHA-1 is refused, never used and never overwritten. A missing file
    is downloaded from d2l's address when ``download`` is true and the network
    answers; otherwise :class:`DataFileError` says exactly where to put the file.
    """
    folder = Path(directory) if directory is not None else data_dir()
    path = folder / TIME_MACHINE_FILE
    if path.is_file():
        digest = sha1_of_bytes(path.read_bytes())
        if digest != TIME_MACHINE_SHA1:
            raise DataFileError(
                f"{path} has SHA-1 {digest}, expected {TIME_MACHINE_SHA1}. It is damaged or "
                "a different edition. Delete it to download the right one, or replace it "
                f"with the file from {TIME_MACHINE_URL}."
            )
        return path
    where = (
        f"Put {TIME_MACHINE_FILE} (SHA-1 {TIME_MACHINE_SHA1}, the file d2l uses) at {path}, "
        f"or set {DATA_DIR_ENV} to the folder that holds it."
    )
    if not download:
        raise DataFileError(f"The Time Machine text is missing and downloading is off. {where}")
    try:
        content = _download(TIME_MACHINE_URL, timeout)
    except (urllib.error.URLError, OSError) as error:
        raise DataFileError(
            f"The Time Machine text is not at {path} and could not be downloaded from "
            f"{TIME_MACHINE_URL} ({error}). Offline? {where}"
        ) from error
    digest = sha1_of_bytes(content)
    if digest != TIME_MACHINE_SHA1:
        raise DataFileError(
            f"Downloaded {TIME_MACHINE_URL} but got SHA-1 {digest}, expected "
            f"{TIME_MACHINE_SHA1}; nothing was saved. {where}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(content)
    partial.replace(path)
    return path


def read_time_machine(directory=None, *, download: bool = True) -> str:
    """The raw text of *The Time Machine* (verified; see :func:`fetch_time_machine`)."""
    return fetch_time_machine(directory, download=download).read_text(encoding="utf-8")
