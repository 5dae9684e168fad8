"""What a course pins: one version everywhere, and a reader's page that stays short.

A teacher cites and installs a version (CITATION.cff, the launch cell's tag v<version>,
`rnnbook.__version__`, the CHANGELOG's latest section); if they disagree, the course
pins one thing and installs another.
"""

import re

import rnnbook
from conftest import ROOT


def pyproject_version() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S).group(1)
    return re.search(r'^version\s*=\s*"([^"]+)"', project, re.M).group(1)


def test_one_version_in_package_citation_and_changelog():
    version = pyproject_version()
    citation = re.search(r"^version:\s*['\"]?([^'\"\s]+)", (ROOT / "CITATION.cff").read_text(encoding="utf-8"), re.M)
    changelog = re.search(r"^## \[(\d[^\]]*)\]", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert citation and changelog, "CITATION.cff needs a version: line and CHANGELOG.md a '## [X.Y.Z]' section"
    found = {"pyproject.toml": version, "rnnbook.__version__": rnnbook.__version__,
             "CITATION.cff": citation.group(1), "CHANGELOG.md (latest section)": changelog.group(1)}
    assert len(set(found.values())) == 1, f"versions disagree: {found}"


def test_how_to_use_is_a_readers_page_of_at_most_900_words():
    text = (ROOT / "book" / "how_to_use.md").read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", " ", text, flags=re.S)  # commands quoted in code blocks are not prose
    words = len(re.findall(r"[A-Za-z0-9][\w'’.-]*", text))
    assert words <= 900, f"book/how_to_use.md has {words} words of prose; readers' page limit is 900"


def test_a_dated_release_is_dated_alike_in_the_citation():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    citation = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    heading = re.search(r"^## \[([^\]]+)\] - (\S+)", changelog, re.M)
    assert heading, "CHANGELOG.md needs a '## [X.Y.Z] - DATE' (or '- unreleased') section"
    version, date = heading.groups()
    if date == "unreleased":
        return
    released = re.search(r"^date-released:\s*['\"]?([\d-]+)", citation, re.M)
    assert released and released.group(1) == date, f"CITATION.cff's date-released should be {date}"
    preferred = citation.split("preferred-citation:", 1)[1]
    assert re.search(rf"^\s+version:\s*['\"]?{re.escape(version)}\b", preferred, re.M), \
        f"CITATION.cff's preferred-citation version should be {version}"
    assert re.search(rf"^\s+year:\s*{date[:4]}\b", preferred, re.M), f"preferred-citation year should be {date[:4]}"
