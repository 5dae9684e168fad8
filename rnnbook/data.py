"""Finding, verifying and (when online) downloading the book's data files.

The running corpus is H. G. Wells' *The Time Machine*, the very file that Dive into
Deep Learning's ``d2l.TimeMachine`` downloads, so vocabularies and results are
comparable with that book. The file is never committed. It is looked up, in order, in

1. the folder named by ``RNNBOOK_DATA_DIR``, when that variable is set (and then
   only there);
2. the project's ``data/`` folder, when the package runs from a clone of the book's
   repository (as with ``make lab``, in CI and on Binder);
3. a per-user cache folder (``~/.cache/rnnbook`` on Linux, or ``$XDG_CACHE_HOME``;
   ``~/Library/Caches/rnnbook`` on macOS; ``%LOCALAPPDATA%\\rnnbook\\Cache`` on
   Windows), where an installed package (Colab, a JupyterHub) keeps it.

The first of these that holds the file wins; if none does, the first one that can be
written to is where the file is downloaded. Whichever copy is used is checked against
its SHA-1 first.
"""

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

TIME_MACHINE_FILE = "timemachine.txt"
TIME_MACHINE_URL = "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
TIME_MACHINE_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"
DATA_DIR_ENV = "RNNBOOK_DATA_DIR"
APP_NAME = "rnnbook"


class DataFileError(RuntimeError):
    """A data file is missing and cannot be fetched, or its contents are wrong, or
    there is no folder to keep it in."""


def package_root() -> Path:
    """The folder that contains the ``rnnbook`` package (a clone's top folder, or
    ``site-packages`` for an installed copy)."""
    return Path(__file__).resolve().parent.parent


def checkout_data_dir(root=None):
    """``<clone>/data`` when ``root`` (default :func:`package_root`) is a clone of the
    book's repository, recognised by its ``pyproject.toml`` naming ``rnnbook``; else None.

    An installed package (``pip install``, not ``-e``) sits in ``site-packages``,
    which has no ``pyproject.toml``, so its parent folder is never used for data.
    """
    root = Path(root) if root is not None else package_root()
    try:
        pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    if 'name = "rnnbook"' not in pyproject or not (root / "rnnbook").is_dir():
        return None
    return root / "data"


def user_cache_dir(platform=None, environ=None):
    """The per-user cache folder for the book's data, or None if no home folder is known.

    Linux and other Unix systems: ``$XDG_CACHE_HOME/rnnbook`` (default
    ``~/.cache/rnnbook``); macOS: ``~/Library/Caches/rnnbook``; Windows:
    ``%LOCALAPPDATA%\\rnnbook\\Cache``.
    """
    platform = sys.platform if platform is None else platform
    environ = os.environ if environ is None else environ
    if platform == "win32" and environ.get("LOCALAPPDATA"):
        return Path(environ["LOCALAPPDATA"]) / APP_NAME / "Cache"
    home = environ.get("HOME") or environ.get("USERPROFILE")
    if not home:
        try:
            home = str(Path.home())
        except (RuntimeError, KeyError):
            return None
    if platform == "darwin":
        return Path(home) / "Library" / "Caches" / APP_NAME
    xdg = environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():  # the XDG spec says to ignore a relative path
        return Path(xdg) / APP_NAME
    return Path(home) / ".cache" / APP_NAME


def candidate_dirs() -> list:
    """The folders :func:`data_dir` chooses from, in order, as ``(description, path)``."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return [(f"${DATA_DIR_ENV}", Path(override).expanduser().resolve())]
    candidates = []
    checkout = checkout_data_dir()
    if checkout is not None:
        candidates.append(("the book's clone", checkout))
    cache = user_cache_dir()
    if cache is not None:
        candidates.append(("your user cache", cache))
    return candidates


def is_writable(folder) -> bool:
    """Whether a file can be created in ``folder`` (creating the folder if needed).

    Tried for real, with a temporary file that is removed again, because permission
    bits do not tell the whole story (read-only file systems, ACLs, root).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".rnnbook-probe-"):
            pass
    except OSError:
        return False
    return True


def data_dir() -> Path:
    """The folder that holds (or will hold) the book's data files.

    Among :func:`candidate_dirs`, the first that already holds *The Time Machine*,
    else the first that can be written to. Raises :class:`DataFileError`, naming every
    folder tried and how to choose another, when none qualifies.
    """
    candidates = candidate_dirs()
    for _, folder in candidates:
        if (folder / TIME_MACHINE_FILE).is_file():
            return folder
    for _, folder in candidates:
        if is_writable(folder):
            return folder
    tried = "; ".join(f"{folder} ({description})" for description, folder in candidates) or "none"
    raise DataFileError(
        f"No folder for the book's data can be written to. Tried: {tried}. Set the environment "
        f"variable {DATA_DIR_ENV} to a folder you can write to (for example "
        f"`export {DATA_DIR_ENV}=$HOME/rnnbook-data` in a shell, or "
        f"`os.environ[\"{DATA_DIR_ENV}\"] = \"/some/folder\"` at the top of a notebook), "
        f"or put {TIME_MACHINE_FILE} (SHA-1 {TIME_MACHINE_SHA1}) in one of those folders."
    )


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
    partial = path.with_suffix(".part")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(content)
        partial.replace(path)
    except OSError as error:
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass
        raise DataFileError(
            f"Downloaded {TIME_MACHINE_URL} (verified) but could not save it at {path} "
            f"({error}). Set {DATA_DIR_ENV} to a folder you can write to."
        ) from error
    return path


def read_time_machine(directory=None, *, download: bool = True) -> str:
    """The raw text of *The Time Machine* (verified; see :func:`fetch_time_machine`)."""
    return fetch_time_machine(directory, download=download).read_text(encoding="utf-8")
