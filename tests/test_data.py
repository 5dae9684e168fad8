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
