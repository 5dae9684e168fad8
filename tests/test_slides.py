"""`make slides`: one reveal.js deck per week of book/course.md, built from the chapters,
working offline. The decks are built once into a temporary folder (about a second);
tests/test_browser.py opens the ones `make slides` wrote in Chromium."""

import base64
import html
import importlib.util
import json
import re
import tarfile
import time
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("slides", ROOT / "tools" / "slides.py")
slides = importlib.util.module_from_spec(spec)
spec.loader.exec_module(slides)

COURSE = (ROOT / "book" / "course.md").read_text(encoding="utf-8")
PNG = b"\x89PNG\r\n\x1a\n"


def markdown_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(cell["source"]) for cell in nb["cells"] if cell["cell_type"] == "markdown"]


def chapter_path(number: int) -> Path:
    (path,) = sorted((ROOT / "notebooks").glob(f"{number:02d}_*.ipynb"))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("slides") / "slides"
    started = time.perf_counter()
    counts = slides.build(out)
    counts["seconds"] = time.perf_counter() - started
    return out, counts


@pytest.fixture(scope="module")
def weeks():
    return slides.teaching_weeks(COURSE)


class Resources(HTMLParser):
    """What a page loads (script src, link href, img src), its text outside scripts, and
    that text without inline code (where a shell's `$HOME` is a dollar, not maths)."""

    def __init__(self):
        super().__init__()
        self.loads, self.text, self.prose, self._in_script, self._in_code = [], [], [], False, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "code":
            self._in_code = True
        if tag == "script":
            self._in_script = True
            if attrs.get("src"):
                self.loads.append(attrs["src"])
        elif tag == "link" and attrs.get("href"):
            self.loads.append(attrs["href"])
        elif tag in ("img", "source", "iframe", "video", "audio") and attrs.get("src"):
            self.loads.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False
        if tag == "code":
            self._in_code = False

    def handle_data(self, data):
        if not self._in_script:
            self.text.append(data)
            if not self._in_code:
                self.prose.append(data)


def parse(path: Path) -> Resources:
    parser = Resources()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


# --------------------------------------------------------------------------------------
# The weeks


def test_weeks_come_from_the_course_table(weeks):
    rows = [line for line in COURSE.split("\n") if re.match(r"\|\s*\d+\s*\|", line)]
    ten_week = [row for row in rows if "{ref}`" in row]
    assert len(weeks) == len(ten_week) >= 8
    assert [week.number for week in weeks] == list(range(1, len(weeks) + 1))
    assert weeks[1].chapters == [2]
    assert weeks[6].chapters == [7, 8]           # "7. LSTM in PyTorch and 8. LSTMCell versus LSTM"
    assert weeks[-2].chapters == [13, 16]        # "13. Variable-length sequences and 16. Attention"
    assert weeks[-1].chapters == [17]
    covered = {number for week in weeks for number in week.chapters}
    existing = {int(path.name[:2]) for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert covered <= existing and len(covered) >= 13, sorted(covered)


TABLE = """Text.

| week | chapter | students can afterwards | lab, homework |
| --- | --- | --- | --- |
| 1 | 1. First | do A | {ref}`a`, {ref}`b` |
| 2 | 2. Second and 3. Third | do B | {ref}`c`, {ref}`d` |
"""


def test_a_week_table_is_parsed_wherever_it_stands():
    weeks = slides.teaching_weeks(TABLE)
    assert [(w.number, w.chapters, w.outcomes) for w in weeks] == [(1, [1], "do A"), (2, [2, 3], "do B")]


@pytest.mark.parametrize("text, message", [
    ("No table here.", "expected a table with the columns week | chapter"),
    (TABLE.replace("| 2 |", "| 3 |"), "expected week 2 in the first column, got '3'"),
    (TABLE.replace("2. Second and 3. Third", "Second and Third"), "week 2 names no chapter number"),
    (TABLE.replace("| do B |", "|"), "has 3 cells, expected 4"),
])
def test_a_malformed_week_table_is_refused_with_what_was_expected(text, message):
    with pytest.raises(slides.SlidesError, match=re.escape(message)):
        slides.teaching_weeks(text)


# --------------------------------------------------------------------------------------
# Small pieces


@pytest.mark.parametrize("text, first", [
    ("One. Two.", "One."),
    ("We use it, e.g. here. Then more.", "We use it, e.g. here."),
    ("The value $a. B$ is set. Next.", "The value $a. B$ is set."),
    ("Call `x. Y()` first. Next.", "Call `x. Y()` first."),
    ("See Fig. 3 for it. Next.", "See Fig. 3 for it."),
    ("Is it? Yes.", "Is it?"),
    ("A 2.5 value, and 3. then lower case. Next", "A 2.5 value, and 3. then lower case."),
    ("No full stop at all", "No full stop at all"),
    ("Line one\ncontinues. Next.", "Line one continues."),
])
def test_first_sentence(text, first):
    assert slides.first_sentence(text) == first


def test_a_bullet_shows_its_bold_lead_or_its_first_sentence():
    assert slides.bullet_text("**Forgetting to detach.** The second backward fails.") == "Forgetting to detach."
    assert slides.bullet_text("Plain item. With more.") == "Plain item."


@pytest.mark.parametrize("n, size", [(5, 6), (7, 6), (5, 3), (7, 3), (12, 4), (1, 3), (9, 3)])
def test_chunks_are_as_few_as_possible_and_evenly_filled(n, size):
    items = list(range(n))
    parts = slides.chunks(items, size)
    assert sum(parts, []) == items
    assert len(parts) == -(-n // size)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_citation_numbers_are_found_outside_code_and_maths():
    texts = ["as shown [3] and [4, 12]", "`x[1]` and $a[2]$ and y[5]", "[Exercise 2.1](https://x) [6](https://y)"]
    assert slides.cited_numbers(texts) == [3, 4, 12]


def test_maths_is_delimited_for_mathjax_and_html_is_escaped():
    render = slides.Renderer()
    assert render.inline("if $a<b$ then `c<d` & e") == (
        'if <span class="math">\\(a&lt;b\\)</span> then <code>c&lt;d</code> &amp; e')
    assert render.block("$$\nx_t = 1\n$$") == '<div class="math">\\[x_t = 1\\]</div>'


# --------------------------------------------------------------------------------------
# Reading a chapter


def png_bytes() -> bytes:
    built_png = next((ROOT / "notebooks").glob("02_*.ipynb"))
    nb = json.loads(built_png.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                data = output["data"]["image/png"]
                return base64.b64decode("".join(data) if isinstance(data, list) else data)
    raise AssertionError("chapter 2 has no PNG output")


def small_notebook(path: Path, objectives=True, alt="A box.", png=True) -> Path:
    figure_meta = {"mystnb": {"figure": {"caption": "A caption with $x$ and {footcite:p}`elman1990finding`.",
                                         "name": "fig-test-box"}}}
    if alt:
        figure_meta["mystnb"]["image"] = {"alt": alt}
    outputs = [{"output_type": "display_data", "metadata": {},
                "data": {"image/png": base64.b64encode(png_bytes()).decode(), "text/plain": "<Figure>"}}] if png else []
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source":
            "# A test chapter\n\nIntro with {footcite:t}`hochreiter1997long`.\n\n"
            + ("**In this chapter you will**\n\n- do $a$;\n- do b.\n" if objectives else "")},
        {"cell_type": "markdown", "metadata": {}, "source":
            "(sec-test-first)=\n## First section\n\nThe state $h_t$ is set. More prose follows.\n\n"
            "$$\nh_t = \\tanh(a_t)\n$$\n\n- **Bold lead.** Detail.\n- Plain item. More.\n\n### A subsection\n\n"
            "See {ref}`sec-test-first` and {ref}`Chapter 2's model <fig-ch02-unrolled>`.\n"},
        {"cell_type": "code", "metadata": figure_meta, "execution_count": 1, "source": "plot()",
         "outputs": outputs},
        {"cell_type": "markdown", "metadata": {}, "source":
            "## Summary\n\n- First point with $y$.\n- Second point.\n\n## Exercises\n\n"
            "```{exercise}\n:label: test-ex-one\n\nCompute $z$ by hand. Then check it.\n```\n\n"
            "```{solution} test-ex-one\n:class: dropdown\n\nTHE SECRET ANSWER.\n```\n\n## References\n\n"
            "```{footbibliography}\n```\n"},
    ]
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def book():
    return slides.student.Book.load(ROOT)


def read_small(book, path):
    # The label in the test notebook must be known to the book, as Book.load would index it.
    book.targets.pop("sec-test-first", None)
    book.add(slides.student.Target("notebooks/99_test", "sec-test-first", "First section"))
    return slides.ChapterReader(book, 99, "notebooks/99_test", path).read()


def test_a_chapter_becomes_an_outline(book, tmp_path):
    chapter = read_small(book, small_notebook(tmp_path / "99_test.ipynb"))
    assert chapter.title == "A test chapter"
    assert chapter.objectives == ["do $a$;", "do b."]
    (section,) = chapter.sections
    assert section.title == "First section"
    assert section.lead == "The state $h_t$ is set."
    assert section.equations == ["h_t = \\tanh(a_t)"]
    assert section.bullets == ["Bold lead.", "Plain item."]
    assert section.subsections == ["A subsection"]
    (figure,) = section.figures
    assert (figure.name, figure.alt) == ("fig-test-box", "A box.")
    assert figure.png.startswith(PNG)
    assert figure.caption == "A caption with $x$ and [2]."   # [1] is cited first, in the intro
    assert chapter.summary == ["First point with $y$.", "Second point."]
    assert chapter.exercises == {"test-ex-one": "Compute $z$ by hand."}
    assert chapter.citations == {1: "hochreiter1997long", 2: "elman1990finding"}
    assert "Hochreiter and Schmidhuber [1]" in chapter.intro


def test_a_chapter_outline_renders_without_myst_or_solutions(book, tmp_path):
    chapter = read_small(book, small_notebook(tmp_path / "99_test.ipynb"))
    deck, files = slides.chapter_slides(chapter, book, slides.Renderer(), "figures")
    text = "\n".join(deck)
    assert list(files) == ["fig-test-box.png"]
    assert '<img src="figures/fig-test-box.png" alt="A box.">' in text
    assert "\\(h_t\\)" in text and "\\[h_t = \\tanh(a_t)\\]" in text
    assert "SECRET" not in text and "{footcite" not in text and "{ref}" not in text
    assert "Works cited: chapter 99" in text and "Elman" in text and "Hochreiter" in text


@pytest.mark.parametrize("kwargs, message", [
    ({"objectives": False}, "expected a paragraph '**In this chapter you will**'"),
    ({"alt": None}, "has no alt text"),
    ({"png": False}, "has no image/png output"),
])
def test_a_chapter_without_what_slides_need_is_refused(book, tmp_path, kwargs, message):
    with pytest.raises(slides.SlidesError, match=re.escape(message)):
        read_small(book, small_notebook(tmp_path / "99_test.ipynb", **kwargs))


# --------------------------------------------------------------------------------------
# Assets


def test_a_reveal_tarball_that_is_not_the_pinned_one_is_refused(tmp_path):
    fake = tmp_path / "reveal.js-5.2.1.tgz"
    with tarfile.open(fake, "w:gz") as archive:
        info = tarfile.TarInfo("package/dist/reveal.js")
        info.size = 2
        archive.addfile(info, BytesIO(b"//"))
    with pytest.raises(slides.SlidesError, match="is not reveal.js 5.2.1 as the npm registry published it"):
        slides.reveal_tarball(fake)
    with pytest.raises(slides.SlidesError, match="does not exist: expected reveal.js 5.2.1's npm tarball"):
        slides.reveal_tarball(tmp_path / "missing.tgz")


def test_without_npm_or_a_cached_tarball_the_message_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(slides, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(slides, "ROOT", tmp_path)
    monkeypatch.setattr(slides.shutil, "which", lambda name: None)
    with pytest.raises(slides.SlidesError, match="npm is not installed to fetch it: install Node.js's npm"):
        slides.reveal_tarball(None)


def test_without_the_mathjax_package_the_message_says_what_to_do(monkeypatch):
    def missing(name):
        raise slides.importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(slides.importlib.metadata, "distribution", missing)
    with pytest.raises(slides.SlidesError, match="sphinx-mathjax-offline, which is not installed: run `make env`"):
        slides.mathjax_source()


def test_a_folder_the_tool_did_not_make_is_not_overwritten(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(slides.SlidesError, match="was not made by tools/slides.py"):
        slides.prepare_output(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


# --------------------------------------------------------------------------------------
# The built decks


def test_one_deck_per_week_and_an_index_that_links_them(built, weeks):
    out, counts = built
    decks = sorted(out.glob("week*.html"))
    assert [deck.name for deck in decks] == [f"week{week.number:02d}.html" for week in weeks]
    assert counts["decks"] == len(weeks)
    index = (out / "index.html").read_text(encoding="utf-8")
    for deck in decks:
        assert f'href="{deck.name}"' in index


def test_decks_load_only_local_files_that_exist(built):
    out, _ = built
    for page in sorted(out.glob("*.html")):
        loads = parse(page).loads
        assert page.name == "index.html" or len(loads) >= 7, (page.name, loads)
        for src in loads:
            assert not re.match(r"(https?:)?//", src), f"{page.name} loads {src} from the network"
            assert (out / src).is_file(), f"{page.name} loads {src}, which is not in {out}"
    assert (out / "assets" / "mathjax" / "tex-chtml.js").is_file()
    assert (out / "assets" / "reveal" / "plugin" / "math" / "math.js").is_file()


def test_every_figure_of_the_lecture_sections_is_copied_with_caption_and_alt(built, weeks):
    out, _ = built
    for week in weeks:
        deck = (out / f"week{week.number:02d}.html").read_text(encoding="utf-8")
        expected = []
        for number in week.chapters:
            nb = json.loads(chapter_path(number).read_text(encoding="utf-8"))
            in_exercises = False
            for cell in nb["cells"]:
                source = "".join(cell["source"])
                if cell["cell_type"] == "markdown" and re.search(r"^## (Exercises|References)\s*$", source, re.M):
                    in_exercises = True
                figure = cell.get("metadata", {}).get("mystnb", {}).get("figure")
                if figure and not in_exercises:
                    expected.append((figure["name"], cell["metadata"]["mystnb"]["image"]["alt"]))
        images = re.findall(r'<img src="figures/([^"]+)\.png" alt="([^"]*)">', deck)
        assert [name for name, _ in images] == [name for name, _ in expected], week.number
        for (name, alt), (_, shown) in zip(expected, images):
            assert html.unescape(shown) == " ".join(alt.split())
            assert (out / "figures" / f"{name}.png").read_bytes().startswith(PNG)
        assert deck.count("<figcaption><strong>Fig. ") == len(expected)


DOLLAR_LEFT = "a $ left unconverted outside code"
MYST_LEFT = [
    (r"\{[A-Za-z][\w:+.-]*\}`", "a MyST role"),
    (r"```|~~~|:::", "a fence or directive"),
    (r"^\s*\([\w-]+\)=\s*$", "a (label)= target"),
    (r"^:[\w-]+:", "a directive option"),
    (r"\$", DOLLAR_LEFT),
]


def test_no_myst_syntax_is_left_in_the_decks(built):
    out, _ = built
    for page in sorted(out.glob("*.html")):
        parsed = parse(page)
        for pattern, what in MYST_LEFT:
            text = "".join(parsed.prose if what == DOLLAR_LEFT else parsed.text)
            match = re.search(pattern, text, re.M)
            assert not match, f"{page.name}: {what}: ...{text[max(0, match.start() - 60):match.end() + 60]}..."


def test_each_chapters_headings_and_maths_reach_its_week(built, weeks):
    out, _ = built
    for week in weeks:
        deck = (out / f"week{week.number:02d}.html").read_text(encoding="utf-8")
        shown = {clean(html.unescape(re.sub(r"<[^>]+>", "", h))) for h in re.findall(r"<h3>(.*?)</h3>", deck)}
        for number in week.chapters:
            markdown = "\n".join(markdown_cells(chapter_path(number)))
            headings = re.findall(r"^## (.+?)\s*$", markdown, re.M)
            for heading in headings:
                if heading.lower() not in ("summary", "exercises", "references"):
                    assert clean(heading) in shown, (week.number, heading)
            start = deck.index(f"<h2>Chapter {number}<br>")
            end = deck.find("<h2>Chapter ", start + 1)
            part = deck[start:end if end > 0 else len(deck)]
            if "$" in markdown:
                assert "\\(" in part or "\\[" in part, f"chapter {number} has maths but its slides have none"
            assert '<aside class="notes">' in part


def clean(text: str) -> str:
    return re.sub(r"\\[()]|[$`]", "", text).strip()


def test_the_last_slide_names_the_weeks_exercises_with_numbers_and_links(built, weeks):
    out, _ = built
    for week in weeks:
        deck = (out / f"week{week.number:02d}.html").read_text(encoding="utf-8")
        last = re.findall(r"<section.*?</section>", deck, re.S)[-1]
        assert "<h3>Lab and homework</h3>" in last
        labels = re.findall(r"\{ref\}`([^`]+)`", week.exercises)
        numbers = re.findall(r'<a href="https://[^"]+#([\w-]+)">Exercise \d+\.\d+</a>', last)
        assert numbers == labels, week.number


def test_make_slides_builds_in_seconds_and_is_a_prerequisite_of_make_test(built):
    assert built[1]["seconds"] < 15, f"building the slides took {built[1]['seconds']:.1f} s"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^slides: \$\(STAMP\)\n\t\$\(PY\) tools/slides.py _build/slides$", makefile, re.M)
    assert re.search(r"^test:.*\bslides\b", makefile, re.M)
