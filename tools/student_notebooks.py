"""Student copies of the chapter notebooks: no solutions, plain Markdown that renders.

Teachers hand these to students, who open them in Jupyter, JupyterLab or Colab. Those
render Markdown and MathJax but not MyST, the Markdown dialect of Jupyter Book, so each
copy is rewritten into plain Markdown:

- Solutions go: one ```{solution}``` block inside a markdown cell, or a gated run of
  cells from ```{solution-start}``` to ```{solution-end}``` (used when a solution
  contains executed code).
- An ```{exercise}``` becomes a heading numbered as in the book ("### Exercise 8.2")
  followed by its text, so its maths renders.
- {ref}, {numref} and {doc} become links to the page of the online book that defines
  the label (the site is ``html.baseurl`` in _config.yml, or the GitHub Pages address
  of ``repository.url``), with the text the book shows ("Exercise 8.5", a heading, a
  figure's caption).
- Citations are numbered by first appearance, as the book's footnotes are:
  {footcite:p}/{cite:p} become "[1]" or "[3, 4]", {footcite:t}/{cite:t} "Hochreiter
  and Schmidhuber [1]" (the prose is written for this style: "the LSTM of Hochreiter
  and Schmidhuber {footcite:p}`...`"), and ```{footbibliography}``` the numbered list
  of the works cited, from book/references.bib, with a link to the book's references.
- A figure that MyST-NB captions from a code cell's metadata gets its caption
  ("Fig. 2.1. ...") in a markdown cell after the cell; admonitions become block
  quotes, ```{figure}``` an image and caption, ```{math}``` a $$ block, (label)=
  targets and % comments disappear.

Any other MyST role or directive stops the tool with an error that names it and the
ones it knows, rather than leaving raw syntax in a student's notebook.

Only the standard library is used (the notebooks are read and written as JSON), so
the copies are made without the book's environment, in well under a second:

    python3 tools/student_notebooks.py OUTPUT_DIR [NOTEBOOK ...]

tools/slides.py reuses Book, Page (its ``numbers`` of citations), split_blocks,
read_notebook, reference_text and yaml_value; tests/test_slides.py covers that use.
"""

import copy
import json
import re
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent

SOLUTION_BLOCK = re.compile(r"```\{solution\}.*?\n```[ \t]*\n?", re.S)
GATE_START = re.compile(r"```\{solution-start\}.*?\n```[ \t]*\n?", re.S)
GATE_END = re.compile(r"```\{solution-end\}[ \t]*\n```[ \t]*\n?", re.S)


def cell_source(cell) -> str:
    """A cell's source as one string (the JSON form may be a list of lines)."""
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def strip_solutions(nb):
    """Return ``nb`` without solutions (modified in place).

    Works on a notebook read as JSON or by nbformat (both allow item access)."""
    kept, inside = [], False
    for cell in nb["cells"]:
        text = cell_source(cell)
        if inside:
            end = GATE_END.search(text) if cell["cell_type"] == "markdown" else None
            if not end:
                continue  # a cell of the solution
            inside, text = False, text[end.end():]
        if cell["cell_type"] == "markdown":
            start = GATE_START.search(text)
            if start:
                end = GATE_END.search(text, start.end())
                inside = end is None
                text = text[:start.start()] + (text[end.end():] if end else "")
            text = SOLUTION_BLOCK.sub("", text).strip("\n")
            if not text:
                continue
        cell["source"] = text
        kept.append(cell)
    if inside:
        raise ValueError("a {solution-start} has no matching {solution-end}")
    nb["cells"] = kept
    return nb


# --------------------------------------------------------------------------------------
# Notebooks as JSON


def read_notebook(path: Path) -> dict:
    with open(path, encoding="utf-8") as file:
        nb = json.load(file)
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        raise ValueError(f"{path}: expected a notebook in nbformat 4 (a JSON object with 'cells')")
    for cell in nb["cells"]:
        cell["source"] = cell_source(cell)
    return nb


def write_notebook(nb: dict, path: Path) -> None:
    """Write ``nb`` as nbformat does: one-space indent, sorted keys, sources as lines."""
    nb = copy.copy(nb)
    nb["cells"] = [dict(cell, source=cell["source"].splitlines(keepends=True)) for cell in nb["cells"]]
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------
# MyST blocks: fences, directives and their options

FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
CLOSING_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,}|:{3,})[ \t]*$")
DIRECTIVE_INFO = re.compile(r"^\{(?P<name>[A-Za-z][\w:+.-]*)\}[ \t]*(?P<argument>.*)$")
OPTION = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>.*)$")
TARGET = re.compile(r"^[ \t]*\((?P<label>[^()\s]+)\)=[ \t]*$")
#: Our own option: the number the book gives an exercise or figure, set before the
#: solutions are removed so that numbers match the book's.
NUMBER_OPTION = "rnnbook-number"


@dataclass
class Directive:
    name: str
    argument: str
    options: dict
    body: str
    line: int       # index of the line of the opening fence in the text parsed
    body_line: int  # index of the body's first line in that text


def split_blocks(text: str):
    """Split MyST Markdown into ("text", str), ("code", str) and ("directive", Directive).

    A fence opens with three or more backticks, tildes or (for directives only)
    colons and closes with at least as many of the same character."""
    lines = text.split("\n")
    blocks, buffer, i = [], [], 0

    def flush():
        if buffer:
            blocks.append(("text", "\n".join(buffer)))
            buffer.clear()

    while i < len(lines):
        match = FENCE.match(lines[i])
        info = match["info"].strip() if match else ""
        directive = DIRECTIVE_INFO.match(info) if match else None
        if not match or (match["fence"][0] == ":" and not directive) or (match["fence"][0] == "`" and "`" in info):
            buffer.append(lines[i])
            i += 1
            continue
        char, width = match["fence"][0], len(match["fence"])
        end = i + 1
        while end < len(lines):
            closing = CLOSING_FENCE.match(lines[end])
            if closing and closing["fence"][0] == char and len(closing["fence"]) >= width:
                break
            end += 1
        if directive and end == len(lines):
            raise ValueError(f"the directive {{{directive['name']}}} opened on line {i + 1} is never closed "
                             f"(expected a line of {width} or more {char!r})")
        flush()
        if directive:
            options, body = parse_options(lines[i + 1:end], directive["name"])
            blocks.append(("directive", Directive(directive["name"], directive["argument"].strip(),
                                                  options, "\n".join(body), i, end - len(body))))
        else:
            blocks.append(("code", "\n".join(lines[i:end + 1])))
        i = end + 1
    flush()
    return blocks


def parse_options(lines: list[str], name: str):
    """A directive's options (``:key: value`` lines or a ``---`` block) and its body."""
    options, i = {}, 0
    while i < len(lines):
        option = OPTION.match(lines[i])
        if option:
            options[option["key"]] = option["value"].strip()
            i += 1
        elif lines[i].strip() == "---" and set(options) <= {NUMBER_OPTION}:
            try:
                end = lines.index("---", i + 1)
            except ValueError:
                raise ValueError(f"the options of {{{name}}} open with '---' but never close") from None
            for line in lines[i + 1:end]:
                key, sep, value = line.partition(":")
                if not sep:
                    raise ValueError(f"{{{name}}}: expected 'key: value' in its options, got {line!r}")
                options[key.strip()] = value.strip()
            i = end + 1
        else:
            break
    while i < len(lines) and not lines[i].strip():
        i += 1
    return options, lines[i:]


def iter_directives(text: str, offset: int = 0):
    """Every directive in ``text``, nested ones too, in document order, as
    (index of the line of its opening fence, Directive); code fences are skipped."""
    for kind, block in split_blocks(text):
        if kind == "directive":
            yield offset + block.line, block
            yield from iter_directives(block.body, offset + block.body_line)


# --------------------------------------------------------------------------------------
# The book: where it lives online, its chapters, labels and bibliography


def yaml_lines(text: str):
    """(indentation, content) of each non-blank line of block-style YAML, comments removed."""
    for raw in text.split("\n"):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if line.strip():
            yield len(line) - len(line.lstrip()), line.strip()


def yaml_value(text: str, *keys: str):
    """The scalar at ``keys`` (a mapping path) in block-style YAML, or None.

    Enough for the book's _config.yml without PyYAML; flow mappings are not read."""
    depth, parent, child = 0, -1, None
    for level, line in yaml_lines(text):
        if depth:
            if level <= parent:
                return None  # left the mapping without finding the key
            child = level if child is None else child
            if level != child:
                continue
        elif level != 0:
            continue
        key, sep, rest = line.partition(":")
        if not sep or key.strip() != keys[depth]:
            continue
        if depth == len(keys) - 1:
            return rest.strip().strip("\"'") or None
        depth, parent, child = depth + 1, level, None
    return None


def site_url(config_text: str) -> str:
    """The online book's address: html.baseurl, else the GitHub Pages address of
    repository.url (the book's workflow publishes there)."""
    base = yaml_value(config_text, "html", "baseurl")
    if base:
        return base.rstrip("/")
    repository = yaml_value(config_text, "repository", "url")
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?", repository or "")
    if not match:
        raise ValueError("_config.yml: expected html.baseurl, or repository.url of the form "
                         f"https://github.com/OWNER/REPO, to link to the online book; got {repository!r}")
    owner, repo = match.groups()
    return f"https://{owner.lower()}.github.io/{repo}"


def chapter_numbers(toc_text: str, continuous: bool = True) -> dict:
    """{page: chapter number} for the files of the numbered parts of a jb-book _toc.yml.

    Numbers run on across parts (Jupyter Book's use_multitoc_numbering) or, with
    ``continuous=False``, restart in each part."""
    numbers, numbered, count, part_level, in_parts = {}, False, 0, None, False
    for level, line in yaml_lines(toc_text):
        if level == 0:
            in_parts = line == "parts:"
            continue
        if not in_parts:
            continue
        if re.match(r"-?\s*sections:", line):
            raise ValueError("_toc.yml: nested 'sections' are not supported by tools/student_notebooks.py")
        if line.startswith("- ") and part_level in (None, level):
            part_level, numbered = level, False  # a new part
            count = count if continuous else 0
            line = line[2:].strip()
        if re.fullmatch(r"numbered:\s*(true|True|\d+)", line):
            numbered = True
        file = re.fullmatch(r"(?:-\s*)?file:\s*(\S+)", line)
        if file and numbered:
            count += 1
            numbers[file.group(1)] = count
    if part_level is None:
        raise ValueError("_toc.yml: expected a jb-book table of contents with 'parts:'")
    return numbers


def make_id(label: str) -> str:
    """The HTML id Sphinx gives a label (docutils' make_id, for ASCII labels)."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


@dataclass
class Target:
    page: str          # "notebooks/08_lstmcell_versus_lstm"
    label: str
    text: Optional[str]   # what {ref} shows: a heading, a figure's caption, "Exercise 8.2"
    number: Optional[str] = None  # what {numref} shows: "Exercise 8.2", "Fig. 2.1"


def page_title(markdown: str) -> Optional[str]:
    heading = re.search(r"^# +(.+?)\s*$", markdown, re.M)
    return heading.group(1) if heading else None


def number_items(nb: dict, chapter: Optional[int]) -> dict:
    """Number exercises and figures as the book does, in document order, before the
    solutions go (a figure in a solution still takes a number).

    Adds our number option to each exercise and figure directive in the notebook's
    markdown and returns {id(code cell): "2.1"} for figures captioned in metadata."""
    counters = {"exercise": 0, "figure": 0}
    code_figures = {}

    def next_number(kind):
        counters[kind] += 1
        return f"{chapter}.{counters[kind]}" if chapter else str(counters[kind])

    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            if cell.get("metadata", {}).get("mystnb", {}).get("figure"):
                code_figures[id(cell)] = next_number("figure")
            continue
        if cell["cell_type"] != "markdown":
            continue
        lines = cell["source"].split("\n")
        inserts = [(line, next_number(d.name)) for line, d in iter_directives(cell["source"])
                   if d.name in counters and "nonumber" not in d.options]
        for line, number in reversed(inserts):
            lines.insert(line + 1, f":{NUMBER_OPTION}: {number}")
        cell["source"] = "\n".join(lines)
    return code_figures


@dataclass
class Book:
    base_url: str
    chapters: dict                      # page -> chapter number
    targets: dict = field(default_factory=dict)   # label -> Target
    titles: dict = field(default_factory=dict)    # page -> title
    bibliography: dict = field(default_factory=dict)
    references_page: Optional[str] = None

    @classmethod
    def load(cls, root: Optional[Path] = None) -> "Book":
        """The book in ``root`` (the repository by default)."""
        root = root or ROOT
        config = (root / "_config.yml").read_text(encoding="utf-8")
        continuous = yaml_value(config, "html", "use_multitoc_numbering") not in ("false", "False")
        toc = (root / "_toc.yml").read_text(encoding="utf-8")
        book = cls(site_url(config), chapter_numbers(toc, continuous))
        bib_files = re.findall(r"^\s*-\s*(\S+\.bib)\s*$", config, re.M)
        for bib in bib_files:
            book.bibliography.update(parse_bibtex((root / bib).read_text(encoding="utf-8"), bib))
        for path in sorted((root / "notebooks").glob("*.ipynb")):
            page = f"notebooks/{path.stem}"
            book.index_notebook(read_notebook(path), page)
        for path in sorted((root / "book").glob("*.md")):
            page = f"book/{path.stem}"
            text = path.read_text(encoding="utf-8")
            book.titles[page] = page_title(text)
            cell = {"cell_type": "markdown", "source": text}
            number_items({"cells": [cell]}, book.chapters.get(page))
            book.index_markdown([cell], page)
            if any(d.name == "bibliography" for _, d in iter_directives(text)):
                book.references_page = page
        return book

    def url(self, page: str, label: Optional[str] = None) -> str:
        return f"{self.base_url}/{page}.html" + (f"#{make_id(label)}" if label else "")

    def add(self, target: Target):
        if target.label in self.targets:
            raise ValueError(f"label {target.label!r} is defined twice: in {self.targets[target.label].page} "
                             f"and in {target.page}")
        self.targets[target.label] = target

    def index_targets(self, text: str, page: str):
        """The (label)= targets of ``text``; one before a heading is named by it."""
        lines = text.split("\n")
        for i, line in enumerate(lines):
            target = TARGET.match(line)
            if target:
                following = next((rest for rest in lines[i + 1:] if rest.strip()), "")
                heading = re.match(r"^#+\s+(.+?)\s*$", following)
                self.add(Target(page, target["label"], heading.group(1) if heading else None))

    def index_notebook(self, nb: dict, page: str):
        nb = copy.deepcopy(nb)
        figures = number_items(nb, self.chapters.get(page))
        markdown = [cell for cell in nb["cells"] if cell["cell_type"] == "markdown"]
        self.titles[page] = page_title(markdown[0]["source"]) if markdown else None
        for cell in nb["cells"]:
            figure = cell.get("metadata", {}).get("mystnb", {}).get("figure", {})
            if id(cell) in figures and figure.get("name"):
                self.add(Target(page, figure["name"], figure.get("caption"), f"Fig. {figures[id(cell)]}"))
        self.index_markdown(markdown, page)

    def index_markdown(self, cells: list, page: str):
        for cell in cells:
            text = cell["source"]
            directives = [directive for _, directive in iter_directives(text)]
            for part in [text] + [directive.body for directive in directives]:
                for kind, block in split_blocks(part):
                    if kind == "text":
                        self.index_targets(block, page)
            for directive in directives:
                label = directive.options.get("label") or directive.options.get("name")
                if not label:
                    continue
                number = directive.options.get(NUMBER_OPTION)
                if directive.name == "exercise":
                    name = f"Exercise {number}" if number else "Exercise"
                    self.add(Target(page, label, name, name))
                elif directive.name == "figure":
                    caption = directive.body.split("\n\n")[0].strip() or None
                    self.add(Target(page, label, caption, f"Fig. {number}" if number else None))
                else:
                    self.add(Target(page, label, directive.argument or None))


# --------------------------------------------------------------------------------------
# A minimal BibTeX reader: entries, fields in braces or quotes, LaTeX accents


@dataclass
class Entry:
    key: str
    kind: str
    fields: dict

    @property
    def names(self) -> list[str]:
        return split_names(self.fields.get("author") or self.fields.get("editor") or "")

    def short_authors(self) -> str:
        last = [last_name(name) for name in self.names]
        if not last:
            return latex_to_text(self.fields.get("title", self.key))
        if len(last) == 1:
            return last[0]
        if len(last) == 2:
            return f"{last[0]} and {last[1]}"
        return f"{last[0]} et al."

    def full_authors(self) -> str:
        names = [full_name(name) for name in self.names]
        if len(names) <= 2:
            return " and ".join(names)
        return ", ".join(names[:-1]) + ", and " + names[-1]


def parse_bibtex(text: str, source: str = "bibliography") -> dict:
    """{key: Entry} from BibTeX ``text``; @comment and @preamble are skipped."""
    entries, i = {}, 0
    while True:
        at = text.find("@", i)
        if at < 0:
            return entries
        head = re.compile(r"@\s*(\w+)\s*([{(])").match(text, at)
        line = text.count("\n", 0, at) + 1
        if not head:
            raise ValueError(f"{source}, line {line}: expected '@type{{key, ...' after '@'")
        kind = head.group(1).lower()
        close = "}" if head.group(2) == "{" else ")"
        i = head.end()
        if kind in ("comment", "preamble"):
            i = matching_close(text, head.end() - 1, source)
            continue
        if kind == "string":
            raise ValueError(f"{source}, line {line}: @string macros are not supported")
        key_match = re.compile(r"\s*([^\s,]+)\s*,").match(text, i)
        if not key_match:
            raise ValueError(f"{source}, line {line}: expected a citation key and a comma after @{kind}{{")
        key, i = key_match.group(1), key_match.end()
        fields = {}
        while True:
            i = skip_space(text, i)
            if text.startswith(close, i):
                i += 1
                break
            name = re.compile(r"([\w-]+)\s*=\s*").match(text, i)
            if not name:
                raise ValueError(f"{source}, entry {key!r}: expected 'field = {{value}}' at line "
                                 f"{text.count(chr(10), 0, i) + 1}")
            i = name.end()
            if text.startswith("{", i):
                end = matching_close(text, i, source)
                value = text[i + 1:end - 1]
            elif text.startswith('"', i):
                end = text.find('"', i + 1)
                if end < 0:
                    raise ValueError(f"{source}, entry {key!r}: an unclosed quote in field {name.group(1)!r}")
                value, end = text[i + 1:end], end + 1
            else:
                bare = re.compile(r"[\w.-]+").match(text, i)
                if not bare:
                    raise ValueError(f"{source}, entry {key!r}: field {name.group(1)!r} has no value")
                value, end = bare.group(0), bare.end()
            fields[name.group(1).lower()] = " ".join(value.split())
            i = skip_space(text, end)
            if text.startswith(",", i):
                i += 1
            elif not text.startswith(close, i):
                raise ValueError(f"{source}, entry {key!r}: expected ',' or the end of the entry after "
                                 f"field {name.group(1)!r}")
        if key in entries:
            raise ValueError(f"{source}: the key {key!r} appears twice")
        entries[key] = Entry(key, kind, fields)


def skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def matching_close(text: str, start: int, source: str) -> int:
    """Index after the brace that closes the one at ``start``."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{" or (text[i] == "(" and text[start] == "("):
            depth += 1
        elif text[i] == "}" or (text[i] == ")" and text[start] == "("):
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError(f"{source}, line {text.count(chr(10), 0, start) + 1}: an unclosed brace")


ACCENTS = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", "=": "\u0304",
           ".": "\u0307", "v": "\u030c", "c": "\u0327", "u": "\u0306", "H": "\u030b", "k": "\u0328"}
ESCAPES = {"&": "&", "_": "_", "%": "%", "$": "$", "#": "#", "{": "{", "}": "}"}
SPECIAL_LETTERS = {"i": "ı", "o": "ø", "O": "Ø", "l": "ł", "L": "Ł", "ss": "ß", "ae": "æ", "AE": "Æ",
                   "aa": "å", "AA": "Å"}


def latex_to_text(value: str) -> str:
    """Plain text from a BibTeX value: accents composed, braces and escapes removed."""
    text = re.sub(r"\\url\{([^{}]*)\}", r"\1", value)
    text = re.sub(r"\\(ss|ae|AE|aa|AA|[ioOlL])(?![A-Za-z])\s?", lambda m: SPECIAL_LETTERS[m.group(1)], text)

    def accent(match):
        letter = match.group(2) or match.group(3)
        return unicodedata.normalize("NFC", letter + ACCENTS[match.group(1)])

    text = re.sub(r"\\([\"'`^~=.])\s*(?:\{(\w)\}|(\w))", accent, text)
    text = re.sub(r"\\([vcuHk])\s*(?:\{(\w)\}|\s(\w))", accent, text)
    text = re.sub(r"\\([&_%$#{}])", lambda m: ESCAPES[m.group(1)], text)
    command = re.search(r"\\[A-Za-z]+|\\.", text)
    if command:
        raise ValueError(f"unsupported LaTeX command {command.group(0)!r} in bibliography text {value!r}")
    text = text.replace("{", "").replace("}", "").replace("---", "\u2014").replace("--", "\u2013")
    return text.replace("~", "\u00a0")


def split_names(value: str) -> list[str]:
    """BibTeX names separated by ' and ' outside braces."""
    names, depth, start = [], 0, 0
    i = 0
    while i < len(value):
        if value[i] == "{":
            depth += 1
        elif value[i] == "}":
            depth -= 1
        elif depth == 0 and value[i:i + 5].lower() == " and ":
            names.append(value[start:i].strip())
            start = i + 5
            i += 4
        i += 1
    names.append(value[start:].strip())
    return [name for name in names if name]


def last_name(name: str) -> str:
    if name.startswith("{") and name.endswith("}"):
        return latex_to_text(name)  # an organisation, {PyTorch Contributors}
    if "," in name:
        return latex_to_text(name.split(",")[0].strip())
    return latex_to_text(name.split()[-1])


def full_name(name: str) -> str:
    if "," in name and not name.startswith("{"):
        last, first = (part.strip() for part in name.split(",", 1))
        return latex_to_text(f"{first} {last}")
    return latex_to_text(name)


def reference_text(entry: Entry) -> str:
    """One line of a chapter's reference list, in Markdown."""
    f = {key: latex_to_text(value) for key, value in entry.fields.items()}
    parts = [sentence(entry.full_authors() or entry.short_authors()), sentence(f.get("title", ""))]
    venue = []
    if entry.kind == "article" and f.get("journal"):
        volume = f.get("volume", "") + (f"({f['number']})" if f.get("number") else "")
        venue = [f"*{f['journal']}*", volume + (f":{f['pages']}" if f.get("pages") else "")]
    elif entry.kind in ("inproceedings", "incollection") and f.get("booktitle"):
        venue = [f"In *{f['booktitle']}*", f"pages {f['pages']}" if f.get("pages") else ""]
    elif entry.kind == "book":
        edition = f.get("edition", "")
        venue = [f"{edition} edition" if edition and "edition" not in edition.lower() else edition,
                 f.get("publisher", ""), f.get("address", "")]
    if f.get("howpublished") and not re.fullmatch(r"https?://\S+", f["howpublished"]):
        venue.append(f["howpublished"])
    parts.append(sentence(", ".join(part for part in venue + [f.get("year", "")] if part)))
    link = (f.get("url") or (f"https://doi.org/{f['doi']}" if f.get("doi") else None)
            or (f["howpublished"] if re.fullmatch(r"https?://\S+", f.get("howpublished", "")) else None))
    if not link and f.get("eprint") and f.get("archiveprefix", "").lower() == "arxiv":
        link = f"https://arxiv.org/abs/{f['eprint']}"
    if link:
        parts.append(f"<{link}>")
    return " ".join(part for part in parts if part.strip(". "))


def sentence(text: str) -> str:
    """``text`` ending in one full stop (or its own ? or !); empty stays empty."""
    text = text.strip()
    return text if not text or text[-1] in ".?!" else text + "."


# --------------------------------------------------------------------------------------
# Converting a page's MyST Markdown into plain Markdown

ROLE = re.compile(r"\{(?P<name>[A-Za-z][\w:+.-]*)\}$")
EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
CITE_PARENTHETICAL = {"footcite", "footcite:p", "cite", "cite:p"}
CITE_TEXTUAL = {"footcite:t", "cite:t"}
ADMONITIONS = {"note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important",
               "warning": "Warning", "caution": "Caution", "attention": "Attention", "danger": "Danger",
               "error": "Error", "seealso": "See also", "admonition": None}
#: Every role and directive the tool turns into plain Markdown (the error lists them).
ROLES = sorted({"ref", "numref", "doc", "term", "math", "code", "kbd", "file"}
               | CITE_PARENTHETICAL | CITE_TEXTUAL)
DIRECTIVES = sorted({"exercise", "solution", "solution-start", "solution-end", "footbibliography",
                     "bibliography", "figure", "image", "math", "code", "code-block", "glossary"}
                    | set(ADMONITIONS))


@dataclass
class Page:
    """Converts one page's Markdown. Citations are numbered in the order of their first
    appearance, as the book's footnotes are; ```{footbibliography}``` lists the works
    cited since the previous one."""
    book: Book
    name: str
    numbers: dict = field(default_factory=dict)  # key -> citation number on this page
    pending: list = field(default_factory=list)  # keys not yet listed

    # ---- blocks

    def convert(self, text: str) -> str:
        parts = []
        for kind, block in split_blocks(text):
            if kind == "code":
                parts.append(block)
            elif kind == "text":
                parts.append(self.convert_text(block))
            else:
                parts.append(self.convert_directive(block))
        return re.sub(r"\n{3,}", "\n\n", "\n".join(parts)).strip("\n")

    def convert_text(self, text: str) -> str:
        kept, in_math = [], False
        for line in text.split("\n"):
            if not in_math and (TARGET.match(line) or line.startswith("%")):
                continue  # a (label)= target or a MyST comment
            in_math ^= line.count("$$") % 2 == 1
            kept.append(line)
        return self.convert_inline("\n".join(kept))

    def convert_directive(self, d: Directive) -> str:
        name = d.name
        if name == "exercise":
            number = d.options.get(NUMBER_OPTION)
            heading = "### Exercise" + (f" {number}" if number else "")
            if d.argument:
                heading += f" · {self.convert_inline(d.argument)}"
            return f"{heading}\n\n{self.convert(d.body)}\n"
        if name in ("solution", "solution-start", "solution-end"):
            raise ValueError(f"{self.name}: a {{{name}}} is left after the solutions were removed")
        if name == "footbibliography":
            return self.reference_list()
        if name == "bibliography":
            return f"See the book's [references]({self.references_url()})."
        if name in ADMONITIONS:
            title = ADMONITIONS[name] or self.convert_inline(d.argument)
            if not title:
                raise ValueError(f"{self.name}: an {{admonition}} needs a title")
            body = self.convert(d.body)
            return quote(f"**{title}**\n\n{body}" if body else f"**{title}**")
        if name in ("figure", "image"):
            return self.figure(d)
        if name == "math":
            return f"$$\n{d.body.strip()}\n$$"
        if name in ("code", "code-block"):
            return f"```{d.argument}\n{d.body}\n```"
        if name == "glossary":
            return self.glossary(d.body)
        raise ValueError(f"{self.name}: the directive {{{name}}} has no plain-Markdown form in "
                         f"tools/student_notebooks.py (it knows {', '.join(DIRECTIVES)}); add one there")

    def figure(self, d: Directive) -> str:
        source = d.argument
        if not re.match(r"https?://", source):
            # Sphinx copies a page's images into _images/ under their own names.
            source = f"{self.book.base_url}/_images/{source.rsplit('/', 1)[-1]}"
        alt = d.options.get("alt", "")
        image = f"![{alt}]({source})"
        if d.name == "image" or not d.body.strip():
            return image
        number = d.options.get(NUMBER_OPTION)
        caption = self.convert(d.body)
        return f"{image}\n\n**Fig. {number}.** {caption}" if number else f"{image}\n\n{caption}"

    def glossary(self, body: str) -> str:
        items, term = [], None
        for line in body.split("\n"):
            if not line.strip():
                continue
            if line[0].isspace():
                if term is None:
                    raise ValueError(f"{self.name}: a {{glossary}} definition comes before any term")
                items[-1] += " " + self.convert_inline(line.strip())
            else:
                term = self.convert_inline(line.strip())
                items.append(f"- **{term}**:")
        return "\n".join(items)

    def references_url(self) -> str:
        if not self.book.references_page:
            raise ValueError("no page of the book has a {bibliography} directive to link citations to")
        return self.book.url(self.book.references_page)

    def reference_list(self) -> str:
        lines = [f"- [{self.numbers[key]}] {reference_text(self.book.bibliography[key])}" for key in self.pending]
        self.pending = []
        lines.append(f"\nEvery work the book cites is in its [references]({self.references_url()}).")
        return "\n".join(lines).strip("\n")

    # ---- roles

    def convert_inline(self, text: str) -> str:
        """Roles become text and links; code spans are left as they are."""
        out, i = [], 0
        for ticks in re.finditer(r"`+", text):
            if ticks.start() < i:
                continue  # inside a code span already consumed
            closing = next((m for m in re.finditer(r"`+", text[ticks.end():])
                            if len(m.group(0)) == len(ticks.group(0))), None)
            if closing is None:
                continue  # a literal run of backticks
            end = ticks.end() + closing.end()
            before = text[i:ticks.start()]
            role = ROLE.search(before)
            if role and not before[:role.start()].endswith("\\"):
                content = text[ticks.end():ticks.end() + closing.start()]
                out.append(before[:role.start()])
                out.append(self.role(role["name"], content))
            else:
                out.append(text[i:end])
            i = end
        out.append(text[i:])
        return "".join(out)

    def role(self, name: str, content: str) -> str:
        explicit = EXPLICIT.match(content)
        text, target = (explicit["text"], explicit["target"]) if explicit else (None, content)
        if name in ("ref", "numref"):
            found = self.book.targets.get(target)
            if found is None:
                raise ValueError(f"{self.name}: {{{name}}}`{content}` names no label of the book "
                                 "(a '(label)=' target, a ':label:' or ':name:' option, or a figure's name)")
            shown = found.number if name == "numref" else found.text
            if name == "numref" and text and ("%s" in text or "{number}" in text):
                number = (found.number or "").split(" ")[-1]
                shown = text.replace("%s", number).replace("{number}", number)
            elif text:
                shown = text
            if not shown:
                raise ValueError(f"{self.name}: {{{name}}}`{content}` needs explicit text "
                                 f"(`text <{target}>`): the label is not on a heading, exercise or figure")
            return f"[{self.convert_inline(shown)}]({self.book.url(found.page, found.label)})"
        if name == "doc":
            page = self.resolve_doc(target)
            return f"[{text or self.book.titles.get(page) or page}]({self.book.url(page)})"
        if name in CITE_PARENTHETICAL or name in CITE_TEXTUAL:
            keys = [key.strip() for key in content.split(",") if key.strip()]
            entries = []
            for key in keys:
                if key not in self.book.bibliography:
                    raise ValueError(f"{self.name}: {{{name}}} cites {key!r}, which is not in the bibliography")
                if key not in self.numbers:
                    self.numbers[key] = len(self.numbers) + 1
                    self.pending.append(key)
                entries.append((self.numbers[key], self.book.bibliography[key]))
            if name in CITE_PARENTHETICAL:
                return "[" + ", ".join(str(number) for number, _ in entries) + "]"
            return join_words([f"{entry.short_authors()} [{number}]" for number, entry in entries])
        if name == "term":
            return text or target
        if name == "math":
            return f"${content}$"
        if name in ("code", "kbd", "file"):
            return f"`{content}`"
        raise ValueError(f"{self.name}: the role {{{name}}} has no plain-Markdown form in "
                         f"tools/student_notebooks.py (it knows {', '.join(ROLES)}); add one there")

    def resolve_doc(self, target: str) -> str:
        target = re.sub(r"\.(md|ipynb)$", "", target)
        if target.startswith("/"):
            page = target.lstrip("/")
        else:
            parts = self.name.split("/")[:-1]
            for part in target.split("/"):
                if part == "..":
                    parts = parts[:-1]
                elif part != ".":
                    parts.append(part)
            page = "/".join(parts)
        if page not in self.book.titles:
            raise ValueError(f"{self.name}: {{doc}}`{target}` names no page of the book")
        return page


def quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


def join_words(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# --------------------------------------------------------------------------------------
# A whole notebook


def markdown_cell(source: str, cell_id: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id[:64], "metadata": {}, "source": source}


def student_copy(nb: dict, page: str, book: Book) -> dict:
    """The student copy of notebook ``nb`` (page "notebooks/NAME"): a new notebook."""
    nb = copy.deepcopy(nb)
    figures = number_items(nb, book.chapters.get(page))
    strip_solutions(nb)
    converter = Page(book, page)
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            try:
                cell["source"] = converter.convert(cell["source"])
            except ValueError as error:
                raise ValueError(f"{error} (cell {cell.get('id', '?')})") from None
            if not cell["source"].strip():
                continue
        cells.append(cell)
        if id(cell) in figures:
            caption = cell["metadata"]["mystnb"]["figure"].get("caption", "")
            text = f"**Fig. {figures[id(cell)]}.** {converter.convert_inline(caption)}".rstrip()
            cells.append(markdown_cell(text, f"{cell.get('id', 'figure')}-caption"))
    if cells and cells[0]["cell_type"] == "markdown":
        note = (f"> Student copy of a chapter of [{book_title(book)}]({book.url(page)}): the exercises "
                "are here, their solutions are not. Links lead to the online book.")
        cells.insert(1, markdown_cell(note, f"{cells[0].get('id', 'title')}-student"))
    nb["cells"] = cells
    return nb


def book_title(book: Book) -> str:
    return book.titles.get("book/intro") or "the book"


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__)
        return 2
    started = time.perf_counter()
    out = Path(argv[0])
    if out.resolve() == (ROOT / "notebooks").resolve():
        print(f"refusing to write student copies over the chapters in {out}", file=sys.stderr)
        return 2
    paths = [Path(arg) for arg in argv[1:]] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    book = Book.load()
    out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        try:
            copy_ = student_copy(read_notebook(path), f"notebooks/{path.stem}", book)
        except ValueError as error:
            print(f"{path}: {error}", file=sys.stderr)
            return 1
        write_notebook(copy_, out / path.name)
        print(f"wrote {out / path.name}")
    print(f"{len(paths)} student copies in {time.perf_counter() - started:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
