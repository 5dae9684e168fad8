"""`make student`: copies that render in Jupyter and Colab, made with the standard library.

The tool (tools/student_notebooks.py) runs here as `make student` runs it, in a
subprocess, but under `python -I -S`: without site-packages, where neither nbformat
nor torch can be imported. The copies' Markdown is then rendered with nbconvert's
renderer (the one Jupyter's HTML export uses) and read the way a student's browser
shows it: exercises as headings and paragraphs, maths left to MathJax, links to the
online book. A small book written into a temporary folder tests each MyST role and
directive the tool converts, and the errors for those it does not.
"""

import copy
import functools
import importlib.util
import json
import re
import subprocess
import sys
import time
from collections import Counter
from html.parser import HTMLParser

import nbformat
import pytest
from nbconvert.filters.markdown_mistune import markdown2html_mistune

from conftest import ROOT, chapter_notebooks

TOOL = ROOT / "tools" / "student_notebooks.py"
spec = importlib.util.spec_from_file_location("student_notebooks", TOOL)
student = importlib.util.module_from_spec(spec)
spec.loader.exec_module(student)

BOOK = student.Book.load()
ROLE = re.compile(r"\{[A-Za-z][\w:+.-]*\}`")
DIRECTIVE = re.compile(r"^ *(?:`{3,}|~{3,}|:{3,}) *\{", re.M)
TARGET = re.compile(r"^[ \t]*\([^()\s]+\)=[ \t]*$", re.M)
OPTION = re.compile(r"^:[\w-]+:", re.M)
EXERCISE_HEADING = re.compile(r"^### Exercise (\d+)\.(\d+)\b", re.M)


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """The student copies of every chapter, made as `make student` makes them but with
    no site-packages; returns (folder, seconds the whole run took)."""
    out = tmp_path_factory.mktemp("student")
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-I", "-S", str(TOOL), str(out)],
                         capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - started
    assert run.returncode == 0, run.stdout + run.stderr
    return out, seconds


@functools.lru_cache(maxsize=None)
def read_copy_cached(folder, name):
    return nbformat.read(folder / name, as_version=4)


def read_copy(copies, path):
    return read_copy_cached(copies[0], path.name)


@functools.lru_cache(maxsize=None)
def render(markdown: str) -> "Rendered":
    """A markdown cell as Jupyter's HTML export renders it (nbconvert's mistune renderer)."""
    return Rendered(markdown2html_mistune(markdown))


def markdown_of(nb) -> str:
    return "\n\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")


class Rendered(HTMLParser):
    """Text of rendered HTML, split into what is inside <pre>/<code> and what is not,
    with the headings and the links."""

    def __init__(self, markup):
        super().__init__(convert_charrefs=True)
        self.markup = markup
        self.code_depth, self.heading, self.link = 0, None, None
        self.prose, self.code, self.headings, self.links = [], [], [], []
        self.feed(markup)
        self.prose_text = " ".join(" ".join(self.prose).split())

    def handle_starttag(self, tag, attrs):
        if tag in ("pre", "code"):
            self.code_depth += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.heading = [tag, ""]
        elif tag == "a" and dict(attrs).get("href", "").startswith("http"):
            self.link = [dict(attrs)["href"], ""]

    def handle_endtag(self, tag):
        if tag in ("pre", "code"):
            self.code_depth -= 1
        elif self.heading and tag == self.heading[0]:
            self.headings.append((tag, self.heading[1].replace("\u00b6", "").strip()))
            self.heading = None
        elif tag == "a" and self.link:
            self.links.append((self.link[0], self.link[1].strip()))
            self.link = None

    def handle_data(self, data):
        (self.code if self.code_depth else self.prose).append(data)
        if self.heading:
            self.heading[1] += data
        if self.link:
            self.link[1] += data


def without_code(markdown: str) -> str:
    """Markdown without its code fences and code spans."""
    text = re.sub(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[ \t]*$", "", markdown, flags=re.M | re.S)
    return re.sub(r"(`+)(?!`).+?(?<!`)\1(?!`)", "", text, flags=re.S)


DISPLAY_MATH = re.compile(r"\$\$.+?\$\$", re.S)
INLINE_MATH = re.compile(r"(?<![\\$])\$[^$\n]+?\$")


def math_spans(markdown: str) -> list[str]:
    """The $...$ and $$...$$ spans of Markdown outside code fences and code spans."""
    text = without_code(markdown)
    return DISPLAY_MATH.findall(text) + INLINE_MATH.findall(DISPLAY_MATH.sub("", text))


def prose(markdown: str) -> str:
    """Markdown without code and maths."""
    return INLINE_MATH.sub("", DISPLAY_MATH.sub("", without_code(markdown)))


# --------------------------------------------------------------------------------------
# The tool needs nothing but the standard library


def test_the_tool_needs_only_the_standard_library_and_takes_seconds(copies):
    out, seconds = copies
    isolated = subprocess.run([sys.executable, "-I", "-S", "-c",
                               "import importlib.util as u, sys; "
                               "sys.exit(sum(u.find_spec(m) is not None for m in ('nbformat', 'torch', 'yaml')))"])
    assert isolated.returncode == 0, "python -I -S still sees site-packages: the run above proves nothing"
    assert sorted(path.name for path in out.glob("*.ipynb")) == [path.name for path in chapter_notebooks()]
    assert seconds < 5, f"make student took {seconds:.1f} s for {len(chapter_notebooks())} chapters"


def test_the_make_target_uses_python3_without_the_environment():
    makefile = (ROOT / "Makefile").read_text()
    rule = re.search(r"^student:(.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert rule, "the Makefile has no `student` target"
    prerequisites, recipe = rule.group(1), rule.group(2)
    assert "STAMP" not in prerequisites and ".venv" not in recipe and "$(PY) " not in recipe
    assert "\t$(PYTHON) tools/student_notebooks.py _build/student\n" in recipe


def test_copies_are_valid_nbformat_4_notebooks(copies):
    for path in chapter_notebooks():
        nb = read_copy(copies, path)
        assert nb.nbformat == 4
        nbformat.validate(nb)
        ids = [cell.id for cell in nb.cells]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate cell ids"


# --------------------------------------------------------------------------------------
# What the copies contain


def test_copies_keep_every_code_cell_but_the_solutions(copies):
    for path in chapter_notebooks():
        original = nbformat.read(path, as_version=4)
        expected = student.strip_solutions(copy.deepcopy(original))
        code = [(cell.source, cell.outputs, cell.execution_count) for cell in expected.cells if cell.cell_type == "code"]
        got = [(cell.source, cell.outputs, cell.execution_count)
               for cell in read_copy(copies, path).cells if cell.cell_type == "code"]
        assert got == code, path.name
        first_code = next(cell for cell in original.cells if cell.cell_type == "code")
        assert got[0][0] == first_code.source, f"{path.name}: the launch cell must stay first"


def test_no_solution_is_left(copies):
    for path in chapter_notebooks():
        original = markdown_of(nbformat.read(path, as_version=4))
        copied = markdown_of(read_copy(copies, path))
        assert "solution" not in copied.lower() or "{solution" not in copied, path.name
        for block in student.SOLUTION_BLOCK.findall(original):
            # the longest line of each solution's prose
            line = max((line for line in block.split("\n")[1:] if not line.startswith((":", "```"))), key=len)
            assert line.strip() not in copied, f"{path.name}: solution text left: {line[:60]!r}"


def test_exercises_are_headings_numbered_as_in_the_book(copies):
    total = 0
    for path in chapter_notebooks():
        exercises = markdown_of(nbformat.read(path, as_version=4)).count("```{exercise}")
        numbers = EXERCISE_HEADING.findall(markdown_of(read_copy(copies, path)))
        chapter = BOOK.chapters[f"notebooks/{path.stem}"]
        assert numbers == [(str(chapter), str(k)) for k in range(1, exercises + 1)], path.name
        total += exercises
    assert total >= 4 * len(chapter_notebooks())


def test_no_myst_role_or_directive_is_left(copies):
    for path in chapter_notebooks():
        nb = read_copy(copies, path)
        for cell in nb.cells:
            if cell.cell_type != "markdown":
                continue
            for pattern in (ROLE, DIRECTIVE, TARGET, OPTION):
                found = pattern.search(cell.source)
                assert not found, f"{path.name}, cell {cell.id}: MyST syntax left: {found.group(0)!r}"


def test_every_role_and_directive_of_the_notebooks_is_one_the_tool_converts():
    """A new role or directive in a chapter fails here, before `make student` does."""
    for path in chapter_notebooks():
        text = markdown_of(nbformat.read(path, as_version=4))
        roles = {match.group(1) for match in re.finditer(r"\{([A-Za-z][\w:+.-]*)\}`", text)}
        directives = {match.group(1) for match in re.finditer(r"^ *(?:`{3,}|:{3,})\{([\w:+.-]+)\}", text, re.M)}
        assert roles <= set(student.ROLES), f"{path.name}: {roles - set(student.ROLES)}"
        assert directives <= set(student.DIRECTIVES), f"{path.name}: {directives - set(student.DIRECTIVES)}"


# --------------------------------------------------------------------------------------
# Rendered as Jupyter renders Markdown


def test_exercises_render_as_headings_and_paragraphs_with_their_maths(copies):
    exercises_with_maths = 0
    for path in chapter_notebooks():
        nb = read_copy(copies, path)
        for cell in nb.cells:
            if cell.cell_type != "markdown" or not EXERCISE_HEADING.search(cell.source):
                continue
            rendered = render(cell.source)
            headings = [text for tag, text in rendered.headings if tag == "h3" and text.startswith("Exercise")]
            assert len(headings) == len(EXERCISE_HEADING.findall(cell.source)), f"{path.name}: {headings}"
            fences = len(re.findall(r"^```", cell.source, re.M)) // 2
            assert rendered.markup.count("<pre") == fences, f"{path.name}: a code block too many"
            for section in re.split(r"^### ", cell.source, flags=re.M)[1:]:
                body = section.split("\n", 1)[1].strip()
                first_words = " ".join(re.sub(r"`[^`]*`|\*", " ", body.split("\n")[0]).split()[:3])
                assert first_words in rendered.prose_text, f"{path.name}: {first_words!r} is not prose"
                exercises_with_maths += bool(math_spans(body))
    assert exercises_with_maths >= 30  # 35 of 78 when the issue was filed


def test_maths_reaches_mathjax_outside_code(copies):
    """Every $...$ and $$...$$ of a copy comes out of the renderer as text, with its
    delimiters and unchanged (no <em> from an underscore), outside <pre> and <code>."""
    checked = 0
    for path in chapter_notebooks():
        nb = read_copy(copies, path)
        for cell in nb.cells:
            if cell.cell_type != "markdown":
                continue
            rendered = render(cell.source)
            for span in math_spans(cell.source):
                assert " ".join(span.split()) in rendered.prose_text, f"{path.name}: {span[:80]!r} did not survive"
                checked += 1
        # and the copy's maths is the chapter's, character for character
        original = student.strip_solutions(nbformat.read(path, as_version=4))
        lost = Counter(math_spans(markdown_of(original))) - Counter(math_spans(markdown_of(nb)))
        assert not lost, f"{path.name}: maths changed or lost: {list(lost)[:3]}"
    assert checked > 500


def test_references_link_to_the_page_of_the_online_book_that_defines_them(copies):
    for path in chapter_notebooks():
        original = student.strip_solutions(nbformat.read(path, as_version=4))
        wanted = re.findall(r"\{(?:ref|numref)\}`(?:[^`<]*<)?([^`<>]+)>?`", markdown_of(original))
        links = []
        for cell in read_copy(copies, path).cells:
            if cell.cell_type == "markdown":
                links += render(cell.source).links
        for label in wanted:
            target = BOOK.targets[label]
            url = f"{BOOK.base_url}/{target.page}.html#{label}"
            assert (url, target.text) in links, f"{path.name}: no link {target.text!r} -> {url}"
        for href, _ in links:
            if href.startswith(BOOK.base_url):
                page = href[len(BOOK.base_url) + 1:].split("#")[0].removesuffix(".html")
                assert (ROOT / f"{page}.ipynb").exists() or (ROOT / f"{page}.md").exists(), href


def test_citations_are_numbered_and_listed_at_the_end_of_each_chapter(copies):
    for path in chapter_notebooks():
        text = markdown_of(read_copy(copies, path))
        cited = {int(number) for group in re.findall(r"\[(\d+(?:, \d+)*)\](?!\()", prose(text))
                 for number in group.split(", ")}
        listed = [int(number) for number in re.findall(r"^- \[(\d+)\] ", text, re.M)]
        assert listed == list(range(1, len(listed) + 1)) and cited == set(listed), path.name
        assert f"]({BOOK.base_url}/book/references.html)" in text, path.name


def test_figure_captions_follow_their_figures(copies):
    for path in chapter_notebooks():
        nb = read_copy(copies, path)
        for index, cell in enumerate(nb.cells):
            figure = cell.metadata.get("mystnb", {}).get("figure") if cell.cell_type == "code" else None
            if figure:
                caption = nb.cells[index + 1]
                assert caption.cell_type == "markdown", path.name
                assert re.match(r"\*\*Fig\. \d+\.\d+\.\*\* ", caption.source), caption.source[:40]
                assert caption.source.endswith(figure["caption"]), path.name


def test_numbers_and_anchors_match_the_built_book():
    """Exercise and figure numbers and link anchors agree with the HTML book, where it
    has been built (`make test` builds it first)."""
    built = ROOT / "_build" / "html"
    if not (built / "notebooks").is_dir():
        pytest.skip("the HTML book is not built (make book)")
    pages = {}
    for label, target in BOOK.targets.items():
        if not target.page.startswith("notebooks/"):
            continue
        page = pages.setdefault(target.page, (built / f"{target.page}.html").read_text(encoding="utf-8"))
        anchor = page.find(f'id="{student.make_id(label)}"')
        assert anchor >= 0, f"{target.page}.html has no anchor for {label}"
        if target.number:
            shown = re.search(r'caption-number">([^<]*)<', page[anchor:anchor + 5000])
            assert shown and shown.group(1).strip() == target.number, (label, target.number)


# --------------------------------------------------------------------------------------
# A small book: every conversion, and the errors


def notebook(*cells):
    made = []
    for index, (kind, source, *metadata) in enumerate(cells):
        cell = {"cell_type": kind, "id": f"c{index}", "metadata": metadata[0] if metadata else {}, "source": source}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        made.append(cell)
    return {"cells": made, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


BIB = """
@article{hochreiter1997long,
  title   = {Long Short-Term Memory},
  author  = {Hochreiter, Sepp and Schmidhuber, J{\\"u}rgen},
  journal = {Neural Computation},
  volume  = {9},
  number  = {8},
  pages   = {1735--1780},
  year    = {1997}
}
@misc{pytorch2024lstm,
  title        = {{torch.nn.LSTM}},
  author       = {{PyTorch Contributors}},
  howpublished = {PyTorch documentation},
  year         = "2024",
  url          = {https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html}
}
@inproceedings{cho2014learning,
  title     = {Learning Phrase Representations},
  author    = {Cho, Kyunghyun and van Merri{\\"e}nboer, Bart and Gul{\\c{c}}ehre, Caglar},
  booktitle = {EMNLP},
  year      = 2014
}
"""

CONFIG = """\
title: A small book
bibtex_bibfiles:
  - book/references.bib
repository:
  url: https://github.com/SomeOne/small-book  # the fork
html:
  use_repository_button: true
"""

TOC = """\
format: jb-book
root: book/intro
parts:
  - caption: Front
    chapters:
      - file: book/how
  - caption: Part I
    numbered: true
    chapters:
      - file: notebooks/01_first
  - caption: Part II
    numbered: true
    chapters:
      - file: notebooks/02_second
      - file: book/references
"""

FIRST = notebook(
    ("markdown", "# The first chapter\n\nIntro."),
    ("code", "import rnnbook"),
    ("markdown", "(sec-gates)=\n## The gates\n\n% a MyST comment, not for readers\nThe LSTM "
                 "{footcite:p}`hochreiter1997long` has gates; {footcite:t}`pytorch2024lstm,cho2014learning` "
                 "document and vary it {footcite:p}`pytorch2024lstm,hochreiter1997long`.\n\n"
                 "```python\n# a code block keeps {ref}`sec-gates` and ```{note}``` as they are\n```\n\n"
                 "Inline code too: ``{ref}`sec-gates` ``."),
    ("code", "plot()", {"mystnb": {"figure": {"caption": "A curve of $h_t$.", "name": "fig-curve"}}}),
    ("markdown", "```{exercise}\n:label: ex-one\n\nShow that $\\sigma(x) = 1 - \\sigma(-x)$.\n```\n\n"
                 "```{solution-start} ex-one\n:class: dropdown\n```"),
    ("code", "solution_plot()", {"mystnb": {"figure": {"caption": "In a solution.", "name": "fig-hidden"}}}),
    ("markdown", "```{solution-end}\n```\n\n```{exercise} Gates by hand\n:label: ex-two\n\n"
                 "Compute $f_t$ and see {numref}`fig-curve`, {numref}`Figure %s <fig-hidden>` and "
                 "{ref}`the gates <sec-gates>`.\n```\n\n```{solution} ex-two\n:class: dropdown\n\nSECRET.\n```"),
    ("markdown", "```{figure} images/cell.png\n:name: fig-cell\n:alt: the cell\n\nThe cell, drawn.\n```\n\n"
                 "```{note}\nMind $\\tanh$.\n\nTwo paragraphs.\n```\n\n"
                 "```{admonition} Try it\nRun {doc}`../book/how`.\n```\n\n"
                 "```{math}\na = b\n```\n\n```{code-block} python\nx = 1\n```\n\n"
                 "```{glossary}\nhidden state\n  The vector carried from step to step, {term}`h_t <hidden>`.\n```\n\n"
                 "Use {math}`x^2` and {kbd}`Ctrl`."),
    ("markdown", "## References\n\n```{footbibliography}\n```"),
)

SECOND = notebook(
    ("markdown", "# The second chapter\n\nAs in {ref}`ex-two` and {ref}`ex-one`; {numref}`fig-cell`; "
                 "{ref}`the hint <hint-inside>`."),
    ("markdown", "```{exercise}\n:label: ex-three\n\n(hint-inside)=\nA hint.\n```"),
)


@pytest.fixture
def small_book(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_config.yml").write_text(CONFIG)
    (tmp_path / "_toc.yml").write_text(TOC)
    (tmp_path / "book" / "references.bib").write_text(BIB)
    (tmp_path / "book" / "references.md").write_text("# References\n\n```{bibliography}\n:all:\n```\n")
    (tmp_path / "book" / "how.md").write_text("# How to use it\n\nRead.\n")
    (tmp_path / "book" / "intro.md").write_text("# A small book\n")
    for name, nb in (("01_first", FIRST), ("02_second", SECOND)):
        (tmp_path / "notebooks" / f"{name}.ipynb").write_text(json.dumps(nb))
    return tmp_path


def convert(book, name, nb):
    copied = student.student_copy(copy.deepcopy(nb), f"notebooks/{name}", book)
    nbformat.validate(nbformat.from_dict(copied))
    return copied


def test_a_small_book_in_plain_markdown(small_book):
    book = student.Book.load(small_book)
    base = "https://someone.github.io/small-book"
    assert book.base_url == base
    assert book.chapters == {"notebooks/01_first": 1, "notebooks/02_second": 2, "book/references": 3}
    cells = convert(book, "01_first", FIRST)["cells"]
    text = [cell["source"] for cell in cells]
    assert text[0] == "# The first chapter\n\nIntro."
    assert text[1].startswith(f"> Student copy of a chapter of [A small book]({base}/notebooks/01_first.html)")
    assert text[2] == "import rnnbook"
    gates = text[3]
    assert gates.startswith("## The gates\n\nThe LSTM [1] has gates; PyTorch Contributors [2] and Cho et al. [3] "
                            "document and vary it [2, 1].")
    assert "(sec-gates)=" not in gates and "MyST comment" not in gates
    assert "# a code block keeps {ref}`sec-gates` and ```{note}``` as they are" in gates
    assert "``{ref}`sec-gates` ``" in gates
    assert text[4] == "plot()"
    assert text[5] == "**Fig. 1.1.** A curve of $h_t$."
    # the solution's figure is gone but keeps its number, as in the book
    assert text[6] == "### Exercise 1.1\n\nShow that $\\sigma(x) = 1 - \\sigma(-x)$."
    assert "SECRET" not in "".join(text) and "solution_plot()" not in text
    assert text[7] == (f"### Exercise 1.2 · Gates by hand\n\nCompute $f_t$ and see [Fig. 1.1]({base}/notebooks/"
                       f"01_first.html#fig-curve), [Figure 1.2]({base}/notebooks/01_first.html#fig-hidden) and "
                       f"[the gates]({base}/notebooks/01_first.html#sec-gates).")
    assert text[8] == (
        f"![the cell]({base}/_images/cell.png)\n\n**Fig. 1.3.** The cell, drawn.\n\n"
        "> **Note**\n>\n> Mind $\\tanh$.\n>\n> Two paragraphs.\n\n"
        f"> **Try it**\n>\n> Run [How to use it]({base}/book/how.html).\n\n"
        "$$\na = b\n$$\n\n```python\nx = 1\n```\n\n"
        "- **hidden state**: The vector carried from step to step, h_t.\n\n"
        "Use $x^2$ and `Ctrl`.")
    assert text[9] == (
        "## References\n\n"
        "- [1] Sepp Hochreiter and Jürgen Schmidhuber. Long Short-Term Memory. *Neural Computation*, "
        "9(8):1735\u20131780, 1997.\n"
        "- [2] PyTorch Contributors. torch.nn.LSTM. PyTorch documentation, 2024. "
        "<https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html>\n"
        "- [3] Kyunghyun Cho, Bart van Merriënboer, and Caglar Gulçehre. Learning Phrase Representations. "
        "In *EMNLP*, 2014.\n\n"
        f"Every work the book cites is in its [references]({base}/book/references.html).")
    assert len(cells) == 10
    second = convert(book, "02_second", SECOND)["cells"][0]["source"]
    assert second == (f"# The second chapter\n\nAs in [Exercise 1.2]({base}/notebooks/01_first.html#ex-two) and "
                      f"[Exercise 1.1]({base}/notebooks/01_first.html#ex-one); "
                      f"[Fig. 1.3]({base}/notebooks/01_first.html#fig-cell); "
                      f"[the hint]({base}/notebooks/02_second.html#hint-inside).")


def test_main_writes_the_copies_it_is_given(small_book, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(student, "ROOT", small_book)
    out = tmp_path / "out"
    assert student.main([str(out), str(small_book / "notebooks" / "02_second.ipynb")]) == 0
    assert [path.name for path in out.iterdir()] == ["02_second.ipynb"]
    nbformat.validate(nbformat.read(out / "02_second.ipynb", as_version=4))
    assert "1 student copies in" in capsys.readouterr().out
    assert student.main([]) == 2
    before = (small_book / "notebooks" / "01_first.ipynb").read_text()
    assert student.main([str(small_book / "notebooks")]) == 2, "copies must never overwrite the chapters"
    assert (small_book / "notebooks" / "01_first.ipynb").read_text() == before


@pytest.mark.parametrize("source, message", [
    ("See {eq}`a`.", r"the role \{eq\} has no plain-Markdown form"),
    ("```{margin}\nA side note.\n```", r"the directive \{margin\} has no plain-Markdown form"),
    ("See {ref}`no-such-label`.", r"names no label of the book"),
    ("Cited {footcite:p}`nobody2020`.", r"cites 'nobody2020', which is not in the bibliography"),
    ("See {doc}`missing`.", r"\{doc\}`missing` names no page"),
    ("```{exercise}\n:label: x\nNever closed.", r"\{exercise\} opened on line 1 is never closed"),
    ("```{admonition}\nNo title.\n```", r"an \{admonition\} needs a title"),
])
def test_what_the_tool_cannot_convert_is_an_error(small_book, source, message):
    book = student.Book.load(small_book)
    with pytest.raises(ValueError, match=message):
        student.student_copy(notebook(("markdown", "# T"), ("markdown", source)), "notebooks/01_first", book)


def test_a_label_defined_twice_is_an_error(small_book):
    broken = copy.deepcopy(SECOND)
    broken["cells"].append({"cell_type": "markdown", "id": "x", "metadata": {},
                            "source": "```{exercise}\n:label: ex-one\nAgain.\n```"})
    (small_book / "notebooks" / "02_second.ipynb").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="label 'ex-one' is defined twice"):
        student.Book.load(small_book)


def test_site_url_prefers_baseurl_and_says_what_it_needs():
    assert student.site_url("html:\n  baseurl: https://example.org/book/\n") == "https://example.org/book"
    assert student.site_url("repository:\n  url: https://github.com/Owner/repo.git\n") == "https://owner.github.io/repo"
    assert student.site_url("other:\n  repository:\n    url: https://github.com/a/b\nrepository:\n"
                            "  url: https://github.com/c/d\n") == "https://c.github.io/d"
    with pytest.raises(ValueError, match="expected html.baseurl, or repository.url"):
        student.site_url("repository:\n  branch: main\n")
    assert student.site_url((ROOT / "_config.yml").read_text()).startswith("https://")


def test_chapter_numbers_follow_the_numbered_parts_of_the_toc():
    assert student.chapter_numbers(TOC) == {"notebooks/01_first": 1, "notebooks/02_second": 2, "book/references": 3}
    assert student.chapter_numbers(TOC, continuous=False) == {
        "notebooks/01_first": 1, "notebooks/02_second": 1, "book/references": 2}
    with pytest.raises(ValueError, match="expected a jb-book table of contents"):
        student.chapter_numbers("format: jb-book\nroot: intro\n")
    real = student.chapter_numbers((ROOT / "_toc.yml").read_text())
    assert sorted(real) == [f"notebooks/{path.stem}" for path in chapter_notebooks()]


def test_the_bibtex_reader():
    entries = student.parse_bibtex(BIB)
    assert [entry.short_authors() for entry in entries.values()] == [
        "Hochreiter and Schmidhuber", "PyTorch Contributors", "Cho et al."]
    assert entries["cho2014learning"].full_authors() == "Kyunghyun Cho, Bart van Merriënboer, and Caglar Gulçehre"
    assert entries["pytorch2024lstm"].fields["year"] == "2024"
    assert student.latex_to_text(r"Ko{\v{c}}isk{\'y}, Tom{\'a}{\v{s}} \& {\"O}zt{\"u}rk -- {cudnnRNNMode\_t}") == \
        "Kočiský, Tomáš & Öztürk \u2013 cudnnRNNMode_t"
    with pytest.raises(ValueError, match=r"unsupported LaTeX command '\\\\emph'"):
        student.latex_to_text(r"\emph{x}")
    with pytest.raises(ValueError, match="expected a citation key and a comma"):
        student.parse_bibtex("@article{title = {x}}")
    with pytest.raises(ValueError, match="line 2: an unclosed brace"):
        student.parse_bibtex("@misc{a,\n  title = {never {closed}\n")
    with pytest.raises(ValueError, match="expected ',' or the end of the entry after field 'title'"):
        student.parse_bibtex("@misc{a,\n  title = {x} year = {2000}}")
    with pytest.raises(ValueError, match="the key 'a' appears twice"):
        student.parse_bibtex("@misc{a, title={x}}\n@misc{a, title={y}}")
    every = student.parse_bibtex((ROOT / "book" / "references.bib").read_text())
    for entry in every.values():
        assert "\\" not in student.reference_text(entry) and "{" not in student.reference_text(entry), entry.key
