"""Lecture slides: one reveal.js deck per teaching week, built from the chapters.

    python tools/slides.py [OUTPUT_DIR] [--reveal reveal.js-5.2.1.tgz]     (make slides)

The weeks are the ten-week course of book/course.md: its table's "chapter" column
names the chapters of each week (every number in it), its "students can afterwards"
and "lab, homework" columns open and close the week's deck. From each chapter
notebook a deck takes, without executing anything:

- the title and the "In this chapter you will" objectives;
- for each section (## heading): its first sentence, its first display equations, the
  bold leads or first sentences of its bullet lists and its ### subheadings, with the
  section's opening paragraph as speaker notes (press S in a deck);
- every figure that a code cell's committed output shows with a MyST-NB caption, as a
  slide with its number as in the book, caption and alt text (the PNG is copied);
- the summary bullets, and the works that the slides cite.

Exercises, solutions and references stay in the book: the last slide of a deck names
the week's lab and homework exercises, with their first sentences and links to them
online. MyST roles and targets are turned into text and links by
tools/student_notebooks.py, so the slides show the book's numbers ("Exercise 8.2",
"Fig. 6.1", citations "[1]" numbered in the order of the chapter, as its footnotes are);
the result is Markdown with $ maths, rendered here with markdown-it (pinned in
requirements.txt, as Jupyter Book's), each equation between \\( \\) or \\[ \\] for
reveal.js's MathJax 3 plugin. A role, directive or chapter layout the tool cannot
handle stops it with a message that says what it expected.

Everything a deck loads ships beside it, so the decks work offline from a folder or a
USB stick: reveal.js from the npm registry's tarball (pinned below, checked against the
registry's SHA-512, fetched once with `npm pack` into _build/cache/) and MathJax 3 from
the copy the HTML book already uses (the pinned PyPI package sphinx-mathjax-offline).
"""

import argparse
import base64
import hashlib
import html
import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "_build" / "cache"
COURSE = ROOT / "book" / "course.md"

REVEAL_VERSION = "5.2.1"
# `npm view reveal.js@5.2.1 dist.integrity`: the registry's hash of the tarball.
REVEAL_INTEGRITY = "sha512-r7//6mIM5p34hFiDMvYfXgyjXqGRta+/psd9YtytsgRlrpRzFv4RbH76TXd2qD+7ZPZEbpBDhdRhJaFgfQ7zNQ=="
# What the decks use of the tarball (paths under its package/ folder); fonts: a folder.
REVEAL_FILES = ("LICENSE", "dist/reveal.js", "dist/reveal.css", "dist/reset.css", "dist/theme/white.css",
                "dist/theme/fonts/source-sans-pro/", "plugin/math/math.js", "plugin/notes/notes.js")
MATHJAX_DIST = "sphinx-mathjax-offline"
# MathJax's TeX-to-HTML component and what it loads on demand (TeX extensions, fonts,
# the menu and its accessibility options); the SVG, MathML and Node.js builds are left.
MATHJAX_FILES = ("tex-chtml.js", "input/tex/", "output/chtml/", "ui/", "a11y/", "sre/", "adaptors/")
MARKER = ".rnnbook-slides"  # marks an output folder as ours, so a rebuild may empty it

COURSE_COLUMNS = ["week", "chapter", "students can afterwards", "lab, homework"]
# Sections of a chapter that are not lecture material, or that are handled apart.
SKIPPED_SECTIONS = {"exercises", "references"}
SUMMARY = "summary"
OBJECTIVES = "In this chapter you will"
# How much of a section a lecture outline shows.
EQUATIONS_ON_SECTION_SLIDE = 2
EQUATIONS_MORE = 3
BULLETS_PER_SECTION = 5
ITEMS_PER_SLIDE = {"objectives": 6, "summary": 3}
# Directives whose text the book shows and which may cite: converted in document order,
# so that citation numbers ([1], [2], ...) are the book's, though not shown on slides.
SOLUTION_DIRECTIVES = {"solution", "solution-start", "solution-end"}
CITATION = re.compile(r"(?<![\w\]\)!])\[(\d+(?:, \d+)*)\](?![(\[])")


class SlidesError(Exception):
    """Input the tool cannot turn into slides; the message says what was expected."""


def load_student_tool():
    """tools/student_notebooks.py, which turns MyST roles into text and links."""
    path = ROOT / "tools" / "student_notebooks.py"
    spec = importlib.util.spec_from_file_location("student_notebooks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


student = load_student_tool()


# --------------------------------------------------------------------------------------
# The weeks of book/course.md


@dataclass
class Week:
    number: int
    chapter_text: str      # the "chapter" cell as written ("7. LSTM in PyTorch and 8. ...")
    chapters: list         # chapter numbers, in the order named
    outcomes: str          # "students can afterwards"
    exercises: str         # "lab, homework", MyST


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every pipe table of a Markdown text, as rows of stripped cells."""
    tables, current = [], []
    for line in text.split("\n") + [""]:
        if line.lstrip().startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    return tables


def teaching_weeks(course: str) -> list[Week]:
    """The weeks of book/course.md's week-by-week table (the first table with the
    columns week | chapter | students can afterwards | lab, homework), checked."""
    where = "book/course.md"
    tables = [table for table in markdown_tables(course)
              if [cell.lower() for cell in table[0]] == COURSE_COLUMNS]
    if not tables:
        raise SlidesError(f"{where}: expected a table with the columns {' | '.join(COURSE_COLUMNS)} and one row "
                          "per week (the ten-week course), from which the slides take each week's chapters")
    rows = tables[0][2:]
    if not rows:
        raise SlidesError(f"{where}: the week table has no rows")
    weeks = []
    for row in rows:
        if len(row) != len(COURSE_COLUMNS):
            raise SlidesError(f"{where}: the week row {row} has {len(row)} cells, expected {len(COURSE_COLUMNS)}")
        number, chapter_text, outcomes, exercises = row
        if not number.isdigit() or int(number) != len(weeks) + 1:
            raise SlidesError(f"{where}: expected week {len(weeks) + 1} in the first column, got {number!r}")
        chapters = [int(n) for n in re.findall(r"\b(\d+)\b", chapter_text)]
        if not chapters:
            raise SlidesError(f"{where}: week {number} names no chapter number in {chapter_text!r}")
        weeks.append(Week(int(number), chapter_text, list(dict.fromkeys(chapters)), outcomes, exercises))
    return weeks


# --------------------------------------------------------------------------------------
# A chapter as a lecture outline


@dataclass
class Figure:
    name: str
    number: str        # "Fig. 2.1", as the book numbers it
    caption: str       # Markdown
    alt: str
    png: bytes


@dataclass
class Section:
    title: str                                       # Markdown
    lead: str = ""                                   # the first sentence, Markdown
    notes: str = ""                                  # the opening paragraph, Markdown
    equations: list = field(default_factory=list)    # LaTeX of display equations
    bullets: list = field(default_factory=list)      # Markdown
    subsections: list = field(default_factory=list)  # Markdown
    figures: list = field(default_factory=list)


@dataclass
class Chapter:
    number: int
    page: str
    path: Path
    title: str = ""
    intro: str = ""
    objectives: list = field(default_factory=list)
    sections: list = field(default_factory=list)
    summary: list = field(default_factory=list)
    exercises: dict = field(default_factory=dict)    # label -> first sentence, Markdown
    citations: dict = field(default_factory=dict)    # citation number -> bibliography key


ABBREVIATIONS = ("e.g.", "i.e.", "cf.", "vs.", "Fig.", "al.", "etc.", "approx.")


def first_sentence(text: str) -> str:
    """The first sentence of a Markdown paragraph; full stops inside maths, code and
    common abbreviations do not end it."""
    text = " ".join(text.split())
    i, inside = 0, None
    while i < len(text):
        char = text[i]
        if inside:
            if text.startswith(inside, i):
                i += len(inside)
                inside = None
                continue
        elif char == "`":
            ticks = re.match(r"`+", text[i:]).group(0)
            inside = ticks
            i += len(ticks)
            continue
        elif char == "$":
            inside = "$$" if text.startswith("$$", i) else "$"
            i += len(inside)
            continue
        elif char in ".?!" and (i + 1 == len(text) or text[i + 1] == " "):
            word = text[:i + 1].rsplit(" ", 1)[-1]
            following = text[i + 2:i + 3]
            if not word.endswith(ABBREVIATIONS) and (not following or not following.islower()):
                return text[:i + 1]
        i += 1
    return text


def bullet_text(item: str) -> str:
    """What a section slide shows of a list item: its bold lead, else its first sentence."""
    item = " ".join(item.split())
    lead = re.match(r"\*\*(.+?)\*\*", item)
    return lead.group(1).strip() if lead else first_sentence(item)


def markdown_parser():
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin
    return MarkdownIt("commonmark").enable("table").use(dollarmath_plugin, double_inline=True)


def figure_png(cell: dict, where: str) -> bytes:
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if "image/png" in data:
            encoded = data["image/png"]
            return base64.b64decode("".join(encoded) if isinstance(encoded, list) else encoded)
    raise SlidesError(f"{where}: a cell captioned as a figure has no image/png output: the notebook "
                      "must be committed executed (make execute)")


class ChapterReader:
    """Walks a notebook's cells in order and collects the outline."""

    def __init__(self, book, number: int, page: str, path: Path):
        self.book, self.page = book, page
        self.converter = student.Page(book, page)
        self.md = markdown_parser()
        self.chapter = Chapter(number, page, path)
        self.section = None      # the Section collecting, or None before the first ##
        self.mode = "intro"      # intro, objectives, section, summary, skip

    def read(self) -> Chapter:
        nb = student.read_notebook(self.chapter.path)
        for index, cell in enumerate(nb["cells"]):
            where = f"{self.chapter.path.name}, cell {index}"
            try:
                if cell["cell_type"] == "markdown":
                    for kind, block in student.split_blocks(cell["source"]):
                        if kind == "text":
                            self.read_markdown(self.converter.convert_text(block))
                        elif kind == "directive":
                            self.directive(block)
                elif cell["cell_type"] == "code":
                    self.read_figure(cell, where)
            except ValueError as error:
                raise SlidesError(f"{where}: {error}") from None
        chapter = self.chapter
        numbers = getattr(self.converter, "numbers", None)
        if not isinstance(numbers, dict):
            raise SlidesError("tools/student_notebooks.py's Page no longer records citation numbers in "
                              "`numbers` ({key: number}); tools/slides.py lists the works its slides cite from it")
        chapter.citations = {number: key for key, number in numbers.items()}
        if not chapter.title:
            raise SlidesError(f"{chapter.path.name}: expected a '# Title' in the first markdown cell")
        if not chapter.objectives:
            raise SlidesError(f"{chapter.path.name}: expected a paragraph '**{OBJECTIVES}**' followed by a "
                              "bullet list of learning objectives")
        if not chapter.summary:
            raise SlidesError(f"{chapter.path.name}: expected a '## Summary' section with a bullet list")
        return chapter

    def directive(self, block):
        """Directives in document order: maths for the slides, an exercise's first
        sentence for the lab slide, and the text of the rest converted (not shown) so
        that citations are numbered as in the book."""
        if block.name == "math":
            if self.mode == "section":
                self.section.equations.append(block.body.strip())
            return
        if block.name == "exercise":
            label = block.options.get("label")
            if not label:
                raise ValueError("an {exercise} without a :label: cannot be named on a slide")
            text = self.converter.convert(block.body)
            paragraph = next((part for part in re.split(r"\n\s*\n", text)
                              if part.strip() and not part.lstrip().startswith(("```", "$$", "|"))), "")
            self.chapter.exercises[label] = first_sentence(paragraph)
        elif block.name in SOLUTION_DIRECTIVES:
            self.converter.convert(block.body)
        else:
            self.converter.convert_directive(block)  # says which directive it cannot convert

    def read_figure(self, cell: dict, where: str):
        figure = cell.get("metadata", {}).get("mystnb", {}).get("figure")
        if not figure or self.mode != "section":
            return
        name = figure.get("name")
        if not name or not figure.get("caption"):
            raise SlidesError(f"{where}: a figure needs mystnb.figure.name and .caption in its metadata")
        alt = cell["metadata"]["mystnb"].get("image", {}).get("alt")
        if not alt:
            raise SlidesError(f"{where}: the figure {name!r} has no alt text (mystnb.image.alt)")
        target = self.book.targets.get(name)
        number = target.number if target and target.number else "Figure"
        caption = self.converter.convert_inline(figure["caption"])
        self.section.figures.append(Figure(name, number, caption, alt, figure_png(cell, where)))

    def source(self, lines: list[str], token) -> str:
        start, end = token.map
        return "\n".join(lines[start:end]).strip()

    def read_markdown(self, text: str):
        lines = text.split("\n")
        tokens = self.md.parse(text)
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if token.type == "heading_open":
                self.heading(int(token.tag[1]), tokens[i + 1].content.strip())
                i += 3
                continue
            if token.type == "paragraph_open" and token.level == 0:
                self.paragraph(self.source(lines, token))
            elif token.type == "math_block" and token.level == 0 and self.mode == "section":
                self.section.equations.append(token.content.strip())
            elif token.type == "bullet_list_open" and token.level == 0:
                items, depth = [], 0
                j = i + 1
                while tokens[j].type != "bullet_list_close" or tokens[j].level != 0:
                    if tokens[j].type == "list_item_open" and tokens[j].level == 1:
                        items.append(self.item_text(lines, tokens[j]))
                    j += 1
                self.bullet_list(items)
                i = j
            i += 1

    @staticmethod
    def item_text(lines: list[str], token) -> str:
        start, end = token.map
        item = "\n".join(lines[start:end]).strip()
        return re.sub(r"^[-*+]\s+", "", item)

    def heading(self, level: int, title: str):
        if level == 1:
            if not self.chapter.title:
                self.chapter.title = title
            return
        if level == 2:
            name = title.lower()
            if name == SUMMARY:
                self.mode, self.section = "summary", None
            elif name in SKIPPED_SECTIONS:
                self.mode, self.section = "skip", None
            else:
                self.mode, self.section = "section", Section(title)
                self.chapter.sections.append(self.section)
        elif level == 3 and self.mode == "section":
            self.section.subsections.append(title)

    def paragraph(self, text: str):
        if self.mode in ("intro", "objectives"):
            if text.strip("* :") == OBJECTIVES:
                self.mode = "objectives"
            elif not self.chapter.intro:
                self.chapter.intro = " ".join(text.split())
        elif self.mode == "section" and not self.section.lead:
            self.section.lead = first_sentence(text)
            self.section.notes = " ".join(text.split())

    def bullet_list(self, items: list[str]):
        if self.mode == "objectives" and not self.chapter.objectives:
            self.chapter.objectives = [" ".join(item.split()) for item in items]
        elif self.mode == "summary":
            self.chapter.summary += [" ".join(item.split()) for item in items]
        elif self.mode == "section":
            self.section.bullets += [bullet_text(item) for item in items]


def read_chapter(book, number: int) -> Chapter:
    pages = [page for page, n in book.chapters.items() if n == number]
    if not pages:
        raise SlidesError(f"book/course.md names chapter {number}, which _toc.yml does not number "
                          f"(it numbers {sorted(book.chapters.values())})")
    page = pages[0]
    path = ROOT / f"{page}.ipynb"
    if not path.is_file():
        raise SlidesError(f"chapter {number} is {page} in _toc.yml, but {path.relative_to(ROOT)} does not exist")
    return ChapterReader(book, number, page, path).read()


# --------------------------------------------------------------------------------------
# HTML


class Renderer:
    """Markdown (with $ maths) to HTML; maths between \\( \\) and \\[ \\] for MathJax."""

    def __init__(self):
        self.md = markdown_parser()
        self.md.add_render_rule("math_inline", lambda s, tokens, i, o, e: self.math(tokens[i].content, False))
        self.md.add_render_rule("math_inline_double", lambda s, tokens, i, o, e: self.math(tokens[i].content, True))
        self.md.add_render_rule("math_block", lambda s, tokens, i, o, e: self.math(tokens[i].content, True))

    @staticmethod
    def math(latex: str, display: bool) -> str:
        latex = html.escape(latex.strip(), quote=False)
        return f'<div class="math">\\[{latex}\\]</div>' if display else f'<span class="math">\\({latex}\\)</span>'

    def inline(self, text: str) -> str:
        return self.md.renderInline(text)

    def block(self, text: str) -> str:
        return self.md.render(text)

    def equation(self, latex: str) -> str:
        return self.math(latex, True)


def items_html(render: Renderer, items: list[str], css: str = "") -> str:
    if not items:
        return ""
    rows = "".join(f"<li>{render.inline(item)}</li>" for item in items)
    return f'<ul class="{css}">{rows}</ul>' if css else f"<ul>{rows}</ul>"


def chunks(items: list, size: int) -> list[list]:
    """``items`` in as few slides of at most ``size`` as possible, evenly filled."""
    if not items:
        return [[]]
    count = -(-len(items) // size)
    bounds = [round(k * len(items) / count) for k in range(count + 1)]
    return [items[bounds[k]:bounds[k + 1]] for k in range(count)]


def cited_numbers(texts: list[str]) -> list[int]:
    """Citation numbers ("[3]", "[3, 4]") in Markdown texts, outside code and maths."""
    numbers = set()
    for text in texts:
        text = re.sub(r"(`+).*?\1|\$\$.*?\$\$|\$[^$]*\$", " ", text, flags=re.S)
        for match in CITATION.finditer(text):
            numbers.update(int(n) for n in match.group(1).split(","))
    return sorted(numbers)


def slide_texts(chapter: Chapter) -> list[str]:
    """Every Markdown text of a chapter that its slides show, speaker notes included."""
    texts = [chapter.title, chapter.intro, *chapter.objectives, *chapter.summary]
    for section in chapter.sections:
        texts += [section.title, section.lead, section.notes, *section.bullets[:BULLETS_PER_SECTION],
                  *section.subsections, *(figure.caption for figure in section.figures)]
    return texts


def slide(body: str, notes: str = "", css: str = "") -> str:
    aside = f'<aside class="notes">{notes}</aside>' if notes else ""
    attribute = f' class="{css}"' if css else ""
    return f"<section{attribute}>\n{body}\n{aside}</section>"


def chapter_slides(chapter: Chapter, book, render: Renderer, figure_dir: str) -> tuple[list[str], dict]:
    """The slides of one chapter and the figures to write ({file name: PNG})."""
    slides, files = [], {}
    heading = f"<h2>Chapter {chapter.number}<br>{render.inline(chapter.title)}</h2>"
    parts = chunks(chapter.objectives, ITEMS_PER_SLIDE["objectives"])
    for k, part in enumerate(parts):
        title = heading if k == 0 else f"<h3>{render.inline(chapter.title)} (continued)</h3>"
        body = f'{title}\n<p class="kicker">{OBJECTIVES}</p>\n{items_html(render, part, "objectives")}'
        slides.append(slide(body, render.block(chapter.intro) if k == 0 else "", "chapter-title"))
    for section in chapter.sections:
        body = [f"<h3>{render.inline(section.title)}</h3>"]
        if section.lead:
            body.append(f'<p class="lead">{render.inline(section.lead)}</p>')
        body += [render.equation(latex) for latex in section.equations[:EQUATIONS_ON_SECTION_SLIDE]]
        body.append(items_html(render, section.bullets[:BULLETS_PER_SECTION]))
        if section.subsections:
            names = " · ".join(render.inline(name) for name in section.subsections)
            body.append(f'<p class="subsections">In this section: {names}</p>')
        notes = render.block(section.notes) if section.notes else ""
        slides.append(slide("\n".join(part for part in body if part), notes))
        more = section.equations[EQUATIONS_ON_SECTION_SLIDE:EQUATIONS_ON_SECTION_SLIDE + EQUATIONS_MORE]
        if more:
            equations = "\n".join(render.equation(latex) for latex in more)
            slides.append(slide(f"<h3>{render.inline(section.title)} (continued)</h3>\n{equations}"))
        for figure in section.figures:
            file = f"{figure.name}.png"
            files[file] = figure.png
            alt = html.escape(" ".join(figure.alt.split()))
            body = (f"<figure>\n<img src=\"{figure_dir}/{file}\" alt=\"{alt}\">\n"
                    f"<figcaption><strong>{html.escape(figure.number)}.</strong> "
                    f"{render.inline(figure.caption)}</figcaption>\n</figure>")
            slides.append(slide(body, f"<p>{html.escape(figure.number)} (alt text): {alt}</p>", "figure"))
    for k, part in enumerate(chunks(chapter.summary, ITEMS_PER_SLIDE["summary"])):
        title = "Summary" if k == 0 else "Summary (continued)"
        slides.append(slide(f"<h3>{title}: chapter {chapter.number}</h3>\n{items_html(render, part, 'summary')}"))
    numbers = cited_numbers(slide_texts(chapter))
    unknown = [n for n in numbers if n not in chapter.citations]
    if unknown:
        raise SlidesError(f"{chapter.path.name}: the slides show citation numbers {unknown} that no citation "
                          f"of the chapter was given (it numbers {sorted(chapter.citations)})")
    if numbers:
        works = [f"[{n}] {student.reference_text(book.bibliography[chapter.citations[n]])}" for n in numbers]
        slides.append(slide(f"<h3>Works cited: chapter {chapter.number}</h3>\n"
                            f"{items_html(render, works, 'references')}", css="references"))
    return slides, files


DECK = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<meta name="generator" content="tools/slides.py (make slides)">
<title>{title}</title>
<link rel="stylesheet" href="{assets}/reveal/dist/reset.css">
<link rel="stylesheet" href="{assets}/reveal/dist/reveal.css">
<link rel="stylesheet" href="{assets}/reveal/dist/theme/white.css">
<link rel="stylesheet" href="{assets}/slides.css">
</head>
<body>
<div class="reveal">
<div class="slides">
{slides}
</div>
</div>
<script src="{assets}/reveal/dist/reveal.js"></script>
<script src="{assets}/reveal/plugin/math/math.js"></script>
<script src="{assets}/reveal/plugin/notes/notes.js"></script>
<script>
Reveal.initialize({{
  hash: true,
  slideNumber: "c/t",
  width: 1280,
  height: 800,
  mathjax3: {{
    mathjax: "{assets}/mathjax/tex-chtml.js",
    // textmacros: \\_ and other text-mode macros inside \\texttt{{}} and \\text{{}}
    loader: {{ load: ["[tex]/textmacros"] }},
    tex: {{ inlineMath: [["\\\\(", "\\\\)"]], displayMath: [["\\\\[", "\\\\]"]],
           packages: {{ "[+]": ["textmacros"] }} }}
  }},
  plugins: [RevealMath.MathJax3, RevealNotes]
}});
</script>
</body>
</html>
"""

CSS = """/* tools/slides.py: lecture outlines, denser than reveal.js's default */
.reveal { font-size: 30px; }
.reveal h2 { font-size: 1.7em; }
.reveal h3 { font-size: 1.25em; }
.reveal h2, .reveal h3 { text-transform: none; }
.reveal .slides section { text-align: left; }
.reveal ul { display: block; margin-left: 1.2em; }
.reveal li { margin-bottom: 0.35em; }
.reveal ul.summary, .reveal ul.objectives, .reveal ul.exercises { font-size: 0.85em; }
.reveal ul.references { font-size: 0.6em; }
.reveal p.kicker { font-weight: 600; margin-bottom: 0.3em; }
.reveal p.lead { font-style: italic; }
.reveal p.subsections, .reveal p.meta { font-size: 0.7em; color: #555; }
.reveal .math { font-size: 0.95em; }
.reveal section.figure figure { margin: 0; text-align: center; }
.reveal section.figure img { height: 540px; width: auto; max-width: 100%; object-fit: contain; margin: 0 auto; }
.reveal section.figure figcaption { font-size: 0.6em; text-align: left; margin-top: 0.4em; }
.reveal code { font-size: 0.9em; background: #f3f3f3; padding: 0 0.15em; }
"""

INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}: lecture slides</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; line-height: 1.45; }}
td, th {{ vertical-align: top; text-align: left; padding: 0.3em 0.6em; border-bottom: 1px solid #ddd; }}
</style>
</head>
<body>
<h1>{title}: lecture slides</h1>
<p>One deck per week of the ten-week course in the book's <em>Teaching with this book</em>
page, made by <code>make slides</code> from the chapters' headings, objectives, equations,
figures and summaries. Everything a deck needs is in this folder, so it works offline.
In a deck: arrow keys or space to move, <kbd>S</kbd> for the speaker notes (each section's
opening paragraph), <kbd>Esc</kbd> for an overview, <kbd>F</kbd> for full screen; add
<code>?print-pdf</code> to a deck's address and print it to get a PDF.</p>
<table>
<tr><th>week</th><th>chapters</th><th>students can afterwards</th><th>slides</th></tr>
{rows}
</table>
<p>The text and figures are the book's, under CC BY 4.0 (LICENSE-CONTENT in the book's
repository); reveal.js {reveal_version} (MIT, <code>assets/reveal/LICENSE</code>) and
MathJax (Apache 2.0) ship with the slides.</p>
</body>
</html>
"""


def deck_name(week: Week) -> str:
    return f"week{week.number:02d}.html"


def exercise_list(week: Week, chapters: list[Chapter], course, render: Renderer) -> str:
    """The lab exercise (first in the course table's cell) and the homework (the rest),
    each with its number, a link to it online and its first sentence."""
    lab, _, homework = week.exercises.partition(", ")
    known = {label: text for chapter in chapters for label, text in chapter.exercises.items()}
    rows = []
    for kind, part in (("Lab", lab), ("Homework", homework)):
        labels = re.findall(r"\{ref\}`([^`<>]+)`", part)
        if not labels:
            raise SlidesError(f"book/course.md, week {week.number}: expected {{ref}}`label` of the {kind.lower()} "
                              f"exercise in the 'lab, homework' column, got {week.exercises!r}")
        for label in labels:
            if label not in known:
                raise SlidesError(f"book/course.md, week {week.number}: the exercise {label!r} is in none of the "
                                  f"week's chapters {[chapter.number for chapter in chapters]}")
            name = render.inline(course.convert_inline(f"{{ref}}`{label}`"))
            lead = f"{kind}{' (one of)' if len(labels) > 1 else ''}"
            rows.append(f"<li><strong>{lead}:</strong> {name}. {render.inline(known[label])}</li>")
    return f'<ul class="exercises">{"".join(rows)}</ul>'


def week_deck(week: Week, chapters: list[Chapter], book, render: Renderer, title: str) -> tuple[str, dict, int]:
    course = student.Page(book, "book/course")
    chapter_text = render.inline(course.convert_inline(week.chapter_text))
    outcomes = render.inline(course.convert_inline(week.outcomes))
    opening = slide(f'<p class="meta">{html.escape(title)}</p>\n<h2>Week {week.number}</h2>\n'
                    f"<p>{chapter_text}</p>\n<p class=\"kicker\">Students can afterwards</p>\n<p>{outcomes}</p>",
                    css="week-title")
    slides, files = [opening], {}
    for chapter in chapters:
        more, figures = chapter_slides(chapter, book, render, "figures")
        slides += more
        files.update(figures)
    links = " ".join(f'<a href="{html.escape(book.url(chapter.page))}">chapter {chapter.number}</a>'
                     for chapter in chapters)
    notebooks = ", ".join(f"<code>{chapter.path.relative_to(ROOT)}</code>" for chapter in chapters)
    slides.append(slide(f"<h3>Lab and homework</h3>\n{exercise_list(week, chapters, course, render)}\n"
                        f"<p class=\"meta\">Run {notebooks} in Jupyter or Colab; the book online: {links}.</p>"))
    page_title = f"Week {week.number}: {re.sub(r'<[^>]+>', '', chapter_text)}"
    text = DECK.format(title=html.escape(page_title, quote=False), assets="assets", slides="\n".join(slides))
    return text, files, len(slides)


# --------------------------------------------------------------------------------------
# Assets: reveal.js and MathJax, copied beside the decks


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def reveal_tarball(explicit: Path | None) -> Path:
    """The pinned reveal.js tarball: the one given, the cached one, or `npm pack`."""
    name = f"reveal.js-{REVEAL_VERSION}.tgz"
    path = explicit or CACHE / name
    if not path.is_file():
        if explicit:
            raise SlidesError(f"{explicit} does not exist: expected reveal.js {REVEAL_VERSION}'s npm tarball {name}")
        npm = shutil.which("npm")
        if not npm:
            raise SlidesError(f"reveal.js {REVEAL_VERSION} is needed in {path.relative_to(ROOT)} and npm is not "
                              f"installed to fetch it: install Node.js's npm, or fetch {name} from the npm "
                              f"registry yourself and pass it with --reveal PATH")
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"fetching reveal.js {REVEAL_VERSION} with npm pack into {CACHE.relative_to(ROOT)}/")
        result = subprocess.run([npm, "pack", f"reveal.js@{REVEAL_VERSION}", "--pack-destination", str(CACHE)],
                                capture_output=True, text=True)
        if result.returncode or not path.is_file():
            raise SlidesError(f"`npm pack reveal.js@{REVEAL_VERSION}` failed (exit {result.returncode}), so the "
                              f"decks have no reveal.js: {result.stderr.strip()[-600:]}")
    digest = sri(path.read_bytes())
    if digest != REVEAL_INTEGRITY:
        raise SlidesError(f"{path} is not reveal.js {REVEAL_VERSION} as the npm registry published it: its "
                          f"SHA-512 is {digest}, expected {REVEAL_INTEGRITY}; delete it and run `make slides` again")
    return path


def copy_reveal(tarball: Path, target: Path) -> int:
    copied = 0
    with tarfile.open(tarball, "r:gz") as archive:
        members = {member.name.removeprefix("package/"): member for member in archive.getmembers()
                   if member.isfile()}
        for wanted in REVEAL_FILES:
            names = [name for name in members if name == wanted or (wanted.endswith("/") and name.startswith(wanted))]
            if not names:
                raise SlidesError(f"{tarball.name} has no {wanted}: the decks need it (REVEAL_FILES in tools/slides.py)")
            for name in names:
                destination = target / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(archive.extractfile(members[name]).read())
                copied += 1
    return copied


def mathjax_source() -> Path:
    try:
        distribution = importlib.metadata.distribution(MATHJAX_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise SlidesError(f"the slides take MathJax from the Python package {MATHJAX_DIST}, which is not "
                          "installed: run `make env` (it is pinned in requirements.txt)") from None
    source = Path(distribution.locate_file(f"{MATHJAX_DIST}/static/mathjax"))
    if not (source / "tex-chtml.js").is_file():
        raise SlidesError(f"{source} has no tex-chtml.js: the package {MATHJAX_DIST} "
                          f"{distribution.version} no longer ships MathJax where tools/slides.py expects it")
    return source


def copy_mathjax(source: Path, target: Path) -> int:
    copied = 0
    for wanted in MATHJAX_FILES:
        path = source / wanted
        if wanted.endswith("/"):
            if not path.is_dir():
                raise SlidesError(f"{path} is missing: the decks need MathJax's {wanted} (MATHJAX_FILES)")
            shutil.copytree(path, target / wanted)
            copied += sum(1 for item in path.rglob("*") if item.is_file())
        else:
            if not path.is_file():
                raise SlidesError(f"{path} is missing: the decks need MathJax's {wanted} (MATHJAX_FILES)")
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / wanted)
            copied += 1
    return copied


def prepare_output(out: Path):
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise SlidesError(f"{out} exists and was not made by tools/slides.py: choose an empty or new folder")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by tools/slides.py; `make slides` deletes and rebuilds this folder\n")


# --------------------------------------------------------------------------------------


def build(out: Path, reveal: Path | None = None, root: Path = ROOT) -> dict:
    """Write every week's deck, index.html and the assets into ``out``; returns counts."""
    tarball = reveal_tarball(reveal)
    mathjax = mathjax_source()
    book = student.Book.load(root)
    course = root / COURSE.relative_to(ROOT)
    if not course.is_file():
        raise SlidesError(f"{course} does not exist: the weeks of the slides come from its week table")
    weeks = teaching_weeks(course.read_text(encoding="utf-8"))
    render = Renderer()
    cache = {}
    prepare_output(out)
    (out / "figures").mkdir()
    rows, counts = [], {"decks": 0, "slides": 0, "figures": 0}
    title = student.yaml_value((root / "_config.yml").read_text(encoding="utf-8"), "title") or "The book"
    title = title.strip("\"'")
    for week in weeks:
        chapters = []
        for number in week.chapters:
            if number not in cache:
                cache[number] = read_chapter(book, number)
            chapters.append(cache[number])
        text, figures, slides = week_deck(week, chapters, book, render, title)
        (out / deck_name(week)).write_text(text, encoding="utf-8")
        for name, png in figures.items():
            (out / "figures" / name).write_bytes(png)
        counts["decks"] += 1
        counts["slides"] += slides
        counts["figures"] += len(figures)
        course = student.Page(book, "book/course")
        rows.append(f"<tr><td>{week.number}</td><td>{render.inline(course.convert_inline(week.chapter_text))}</td>"
                    f"<td>{render.inline(course.convert_inline(week.outcomes))}</td>"
                    f'<td><a href="{deck_name(week)}">{deck_name(week)}</a> ({slides} slides)</td></tr>')
    (out / "index.html").write_text(INDEX.format(title=html.escape(title), rows="\n".join(rows),
                                                 reveal_version=REVEAL_VERSION), encoding="utf-8")
    assets = out / "assets"
    counts["asset files"] = copy_reveal(tarball, assets / "reveal") + copy_mathjax(mathjax, assets / "mathjax")
    (assets / "slides.css").write_text(CSS, encoding="utf-8")
    return counts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="One reveal.js deck per teaching week of book/course.md.")
    parser.add_argument("out", nargs="?", default=str(ROOT / "_build" / "slides"), help="output folder")
    parser.add_argument("--reveal", type=Path, help=f"reveal.js {REVEAL_VERSION}'s npm tarball "
                        f"(default: _build/cache/reveal.js-{REVEAL_VERSION}.tgz, fetched with npm pack if missing)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    out = Path(args.out).resolve()
    try:
        counts = build(out, args.reveal)
    except SlidesError as error:
        print(f"make slides: {error}", file=sys.stderr)
        return 1
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    print(f"{counts['decks']} decks, {counts['slides']} slides, {counts['figures']} figures, "
          f"{counts['asset files']} asset files ({size / 2**20:.1f} MiB) in {time.perf_counter() - started:.1f} s: "
          f"{out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
