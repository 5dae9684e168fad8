"""The Time Machine loader: verified file, corrupted file, missing file offline."""

import hashlib
import urllib.error

import pytest

from rnnbook import data
from rnnbook.data import (TIME_MACHINE_FILE, TIME_MACHINE_SHA1, DataFileError,
                          fetch_time_machine, read_time_machine)


@pytest.fixture
def genuine_bytes():
    """The real file's bytes (from the project's data folder, where CI places it)."""
    return fetch_time_machine(download=False).read_bytes()


def test_the_project_copy_is_the_d2l_file(genuine_bytes):
    assert hashlib.sha1(genuine_bytes).hexdigest() == TIME_MACHINE_SHA1
    assert len(genuine_bytes) == 178_979


def test_read_returns_the_text():
    text = read_time_machine(download=False)
    assert text.startswith("The Time Machine, by H. G. Wells")


def test_corrupted_file_is_refused_and_left_alone(tmp_path, genuine_bytes):
    damaged = genuine_bytes[:-10] + b"tampered!!"
    (tmp_path / TIME_MACHINE_FILE).write_bytes(damaged)
    with pytest.raises(DataFileError) as error:
        fetch_time_machine(tmp_path)
    message = str(error.value)
    assert TIME_MACHINE_SHA1 in message and str(tmp_path / TIME_MACHINE_FILE) in message
    assert hashlib.sha1(damaged).hexdigest() in message
    assert (tmp_path / TIME_MACHINE_FILE).read_bytes() == damaged  # not overwritten, not used


def test_missing_file_offline_says_where_to_put_it(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(data, "_download", offline)
    with pytest.raises(DataFileError) as error:
        fetch_time_machine(tmp_path / "nowhere")
    message = str(error.value)
    assert f"Put {TIME_MACHINE_FILE}" in message
    assert str(tmp_path / "nowhere" / TIME_MACHINE_FILE) in message
    assert TIME_MACHINE_SHA1 in message and "RNNBOOK_DATA_DIR" in message
    assert not (tmp_path / "nowhere").exists()


def test_missing_file_with_download_off_never_touches_the_network(tmp_path, monkeypatch):
    def forbidden(url, timeout):
        raise AssertionError("must not download")

    monkeypatch.setattr(data, "_download", forbidden)
    with pytest.raises(DataFileError, match="downloading is off"):
        fetch_time_machine(tmp_path, download=False)


def test_download_is_verified_then_saved(tmp_path, monkeypatch, genuine_bytes):
    requested = []

    def fake_download(url, timeout):
        requested.append(url)
        return genuine_bytes

    monkeypatch.setattr(data, "_download", fake_download)
    path = fetch_time_machine(tmp_path / "fresh")
    assert requested == [data.TIME_MACHINE_URL]
    assert path.read_bytes() == genuine_bytes
    assert list((tmp_path / "fresh").iterdir()) == [path]  # no partial file left behind


def test_a_bad_download_is_not_saved(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_download", lambda url, timeout: b"<html>error page</html>")
    with pytest.raises(DataFileError, match="nothing was saved"):
        fetch_time_machine(tmp_path)
    assert not (tmp_path / TIME_MACHINE_FILE).exists()


def test_environment_variable_moves_the_data_folder(tmp_path, monkeypatch, genuine_bytes):
    (tmp_path / TIME_MACHINE_FILE).write_bytes(genuine_bytes)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert data.data_dir() == tmp_path.resolve()
    assert fetch_time_machine(download=False) == tmp_path.resolve() / TIME_MACHINE_FILE


# --- Where the data folder is: environment variable, clone, per-user cache -------------

import importlib.util  # noqa: E402
import zipfile  # noqa: E402
import zipimport  # noqa: E402

from conftest import ROOT  # noqa: E402


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No RNNBOOK_DATA_DIR, and a home and cache folder of the test's own."""
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data.sys, "platform", "linux")
    return tmp_path


def installed_copy(zip_path):
    """rnnbook/data.py imported from a zip archive, as from a read-only install.

    Nothing can be created under a regular file (not even by root, who ignores
    permission bits), so the archive is a package location that cannot be written to,
    and its folder has no pyproject.toml, as site-packages has none.
    """
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.write(ROOT / "rnnbook" / "data.py", "rnnbook/data.py")
    spec = zipimport.zipimporter(str(zip_path / "rnnbook")).find_spec("data")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.package_root() == zip_path
    return module


def fake_clone(root, data_is_a_file=False):
    (root / "rnnbook").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "rnnbook"\n')
    if data_is_a_file:
        (root / "data").write_text("not a folder")  # so <clone>/data cannot be created
    return root


def test_a_clone_keeps_its_data_folder_where_ci_puts_the_corpus(isolated):
    assert data.checkout_data_dir() == ROOT / "data"
    assert data.data_dir() == ROOT / "data"
    assert fetch_time_machine(download=False) == ROOT / "data" / TIME_MACHINE_FILE
    assert not (isolated / "cache").exists(), "a clone must not touch the user cache"


def test_a_read_only_install_downloads_into_the_user_cache(isolated, monkeypatch, genuine_bytes):
    installed = installed_copy(isolated / "site-packages.zip")
    monkeypatch.setattr(installed, "_download", lambda url, timeout: genuine_bytes)
    assert installed.checkout_data_dir() is None
    assert installed.data_dir() == isolated / "cache" / "rnnbook"
    path = installed.fetch_time_machine()
    assert path == isolated / "cache" / "rnnbook" / TIME_MACHINE_FILE
    assert path.read_bytes() == genuine_bytes
    assert installed.read_time_machine(download=False).startswith("The Time Machine")


def test_an_installed_package_never_writes_beside_itself(isolated, monkeypatch):
    """A writable site-packages (a user's own venv) still gets no `data` folder."""
    site = isolated / "site-packages"
    (site / "rnnbook").mkdir(parents=True)
    monkeypatch.setattr(data, "package_root", lambda: site)
    assert data.checkout_data_dir() is None
    assert data.data_dir() == isolated / "cache" / "rnnbook"
    assert not (site / "data").exists()


def test_the_corpus_is_found_in_any_candidate_and_verified_there(isolated, monkeypatch, genuine_bytes):
    clone = fake_clone(isolated / "clone")
    monkeypatch.setattr(data, "package_root", lambda: clone)
    cache = isolated / "cache" / "rnnbook"
    cache.mkdir(parents=True)
    (cache / TIME_MACHINE_FILE).write_bytes(genuine_bytes)
    assert data.data_dir() == cache, "the clone has no copy; the cached one must be used"
    (clone / "data").mkdir()
    (clone / "data" / TIME_MACHINE_FILE).write_bytes(genuine_bytes[:-1] + b"!")
    assert data.data_dir() == clone / "data", "the clone comes first"
    with pytest.raises(DataFileError, match="expected " + TIME_MACHINE_SHA1):
        fetch_time_machine()


def test_a_clone_that_cannot_be_written_falls_back_to_the_cache(isolated, monkeypatch):
    clone = fake_clone(isolated / "clone", data_is_a_file=True)
    monkeypatch.setattr(data, "package_root", lambda: clone)
    assert [path for _, path in data.candidate_dirs()] == [clone / "data", isolated / "cache" / "rnnbook"]
    assert not data.is_writable(clone / "data")
    assert data.data_dir() == isolated / "cache" / "rnnbook"


def test_the_environment_variable_wins_over_clone_and_cache(isolated, monkeypatch):
    chosen = isolated / "elsewhere"
    monkeypatch.setenv(data.DATA_DIR_ENV, str(chosen))
    assert data.candidate_dirs() == [(f"${data.DATA_DIR_ENV}", chosen)]
    assert data.data_dir() == chosen and chosen.is_dir()
    assert not (isolated / "cache").exists()


def test_when_nothing_can_be_written_the_error_names_each_place_and_the_variable(isolated, monkeypatch):
    (isolated / "file").write_text("a regular file")
    monkeypatch.setenv("XDG_CACHE_HOME", str(isolated / "file" / "cache"))
    installed = installed_copy(isolated / "site-packages.zip")
    with pytest.raises(installed.DataFileError) as error:
        installed.fetch_time_machine()
    message = str(error.value)
    assert str(isolated / "file" / "cache" / "rnnbook") in message
    assert "RNNBOOK_DATA_DIR" in message and "can be written" in message

    clone = fake_clone(isolated / "clone", data_is_a_file=True)
    monkeypatch.setattr(data, "package_root", lambda: clone)
    with pytest.raises(DataFileError) as error:
        data.data_dir()
    assert str(clone / "data") in str(error.value) and str(isolated / "file" / "cache") in str(error.value)

    monkeypatch.setenv(data.DATA_DIR_ENV, str(isolated / "file" / "data"))
    with pytest.raises(DataFileError, match=r"\$RNNBOOK_DATA_DIR"):
        data.data_dir()


def test_a_failed_save_is_a_data_file_error(tmp_path, monkeypatch, genuine_bytes):
    (tmp_path / "file").write_text("a regular file")
    monkeypatch.setattr(data, "_download", lambda url, timeout: genuine_bytes)
    with pytest.raises(DataFileError, match="could not save it"):
        fetch_time_machine(tmp_path / "file" / "data")


@pytest.mark.parametrize("platform, environ, expected", [
    ("linux", {"HOME": "/h"}, "/h/.cache/rnnbook"),
    ("linux", {"HOME": "/h", "XDG_CACHE_HOME": "/x"}, "/x/rnnbook"),
    ("linux", {"HOME": "/h", "XDG_CACHE_HOME": "relative"}, "/h/.cache/rnnbook"),
    ("darwin", {"HOME": "/Users/a"}, "/Users/a/Library/Caches/rnnbook"),
    ("win32", {"LOCALAPPDATA": "C:/Users/a/AppData/Local"}, "C:/Users/a/AppData/Local/rnnbook/Cache"),
])
def test_user_cache_folder_per_system(platform, environ, expected):
    assert data.user_cache_dir(platform, environ) == data.Path(expected)
