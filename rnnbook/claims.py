"""Numbers in prose come from outputs: the check that keeps a chapter's sentences and
its executed results together.

A chapter quotes results in its markdown ("validation perplexity 4.61", "2.9 to 3.4
times faster"). Re-executing the notebook changes the outputs but not the sentences,
so every number the prose states must be found, as printed, in a place that the
execution keeps honest:

* an output of the same notebook (stream text, a displayed value or table), rounded
  as printed: ``4.61`` in prose is backed by ``4.61`` or ``4.610`` printed, not by
  ``4.6123`` nor by ``4.6``;
* a number written in the notebook's code: a setting (``H = 256``, ``epochs=8``) or the
  bound of an assertion (``assert ratio > 1.25``), which the execution enforces;
* an output of a chapter that the same markdown cell names ("chapter 2's 5.20");
* a short, reviewed allow-list (:data:`ALLOWED` and the per-chapter entries in
  ``tests/prose_numbers.toml``): constants of equations, facts about data quoted from
  their source, sizes of published work.

Not checked, because they are not results: chapter, part, section and equation numbers,
years (1900 to 2039), numbers inside code spans, cross-reference and citation roles,
link targets, labels, and integers inside LaTeX maths (indices and exponents).
Decimals inside maths are checked like prose.

The same module measures what else keeps a chapter readable: words of main text (at
most :data:`MAX_MAIN_TEXT_WORDS`), summary bullets (at most
:data:`MAX_SUMMARY_BULLET_WORDS` words each) and sentences about the test harness,
which belong in the appendix ``book/checking.md``.

``python -m rnnbook.claims notebooks/02_*.ipynb`` lists, per chapter, every number it
cannot back (with the cell and the sentence around it), the harness talk, and the
lengths.
"""

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

#: Numbers anyone may write without an output behind them. Empty: a count or a
#: size in prose is backed by the code that sets it; anything else goes on the
#: reviewed per-chapter list in ``tests/prose_numbers.toml`` with its reason.
ALLOWED: set[float] = set()

# A number as prose writes it: an optional sign, digits with thousands separators or a
# fraction, an optional exponent; it must not continue a word or an identifier.
PROSE_NUMBER = re.compile(
    r"(?<![\w.\-])(?:[-\u2212+])?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-\u2212+]?\d+)?(?![\w])"
    r"|(?<![\w.])\.\d+(?![\w])")
# Numbers in outputs and code, as Python prints and writes them.
CODE_NUMBER = re.compile(r"(?<![A-Za-z_\d.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+(?:_\d+)*)(?:\.\d*)?(?:[eE][-+]?\d+)?"
                         r"|(?<![A-Za-z_\d.])\.\d+(?:[eE][-+]?\d+)?")

# Words before a number that make it a name rather than a result.
NAMING = re.compile(
    r"(?:\b(?:[Cc]hapters?|[Pp]arts?|[Ss]ections?|§|[Ee]quations?|[Ee]qs?\.|[Ff]igures?|[Tt]ables?|"
    r"[Ss]eeds?|[Ww]eeks?|[Aa]ppendix|[Ee]xercises?|[Ll]ab|[Ss]tep|[Vv]ersion|[Pp]ython|PyTorch|"
    r"torch|[Ll]ayer|[Pp]roject|[Tt]ask|[Rr]ound|[Ee]poch|[Cc]ell|[Ll]ine|M|arXiv|v)"
    r"(?:\s+|\s*\(|\s*-\s*)(?:(?:\d+(?:\.\d+)*|and|to|or|,)\s*)*)$")
CHAPTER_NAMES = re.compile(r"\b[Cc]hapters?\s+((?:\d+(?:\s*,\s*|\s+(?:and|to|or)\s+|\s*[-\u2013]\s*))*\d+)")

MATH_BLOCK = re.compile(r"\$\$.*?\$\$|\\begin\{(\w+\*?)\}.*?\\end\{\1\}", re.S)
MATH_INLINE = re.compile(r"(?<!\\)\$(?!\$)(.+?)(?<!\\)\$", re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
ROLE = re.compile(r"\{[\w:-]+\}`[^`]*`")
LINK_TARGET = re.compile(r"\]\([^)]*\)|<https?://[^>]*>|https?://\S+")
DIRECTIVE_LINE = re.compile(r"^\s*(?:`{3,}|:{3,}|:[\w-]+:).*$", re.M)
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
#: Length limits of a chapter (words of main text; words per summary bullet).
MAX_MAIN_TEXT_WORDS = 3500
MAX_SUMMARY_BULLET_WORDS = 35
DECIMAL = re.compile(r"(?<![\w.])\d*\.\d+(?:[eE][-+]?\d+)?(?![\w])")


def _value(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("_", "").replace("\u2212", "-"))
    except ValueError:
        return None


def _key(value: float) -> float:
    """Numbers compare as printed values, to twelve significant digits (so that 2e-23
    is not mistaken for 3e-16); -0.5 in an output backs 0.5 in prose ("falls by 0.5"),
    so signs are dropped."""
    return float(f"{abs(value):.12g}")


def numbers_in_code_or_output(text: str) -> set[float]:
    """Every number Python printed or a programmer wrote in ``text``."""
    found = set()
    for match in CODE_NUMBER.finditer(text):
        value = _value(match.group(0))
        if value is not None:
            found.add(_key(value))
            if "," in match.group(0):  # 80,412 may also be read as a list of two numbers
                found.update(_key(float(part)) for part in match.group(0).split(",") if part)
    return found


def output_text(cell) -> str:
    """The text a code cell displayed: streams, plain-text and markdown displays, HTML
    tables with their tags removed."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(_joined(out.get("text", "")))
        data = out.get("data", {})
        for mime in ("text/plain", "text/markdown", "text/latex"):
            if mime in data:
                parts.append(_joined(data[mime]))
        if "text/html" in data:
            parts.append(re.sub(r"<[^>]+>", " ", _joined(data["text/html"])))
    return "\n".join(parts)


def _joined(text) -> str:
    return "".join(text) if isinstance(text, list) else str(text)


@dataclass(frozen=True)
class ProseNumber:
    """A number found in prose: where it is and the words around it."""

    cell: int
    text: str
    value: float
    context: str

    def __str__(self):
        return f"cell {self.cell}: {self.text!r} in \u2026{self.context}\u2026"


def prose_of(source: str) -> str:
    """Markdown with everything that is not checked prose blanked out (same length is
    not kept; only the words matter)."""
    text = HTML_COMMENT.sub(" ", source)
    text = DIRECTIVE_LINE.sub(" ", text)
    text = ROLE.sub(" ", text)
    text = CODE_SPAN.sub(" ", text)
    text = LINK_TARGET.sub("] ", text)
    # Maths: keep decimals (quoted values such as $\approx 0.6$), drop integers
    # (indices, exponents, constants of the equations).
    text = MATH_BLOCK.sub(lambda m: " " + " ".join(DECIMAL.findall(m.group(0))) + " ", text)
    text = MATH_INLINE.sub(lambda m: " " + " ".join(DECIMAL.findall(m.group(1))) + " ", text)
    return text


def prose_numbers(source: str, cell: int = 0) -> list[ProseNumber]:
    """The numbers a markdown cell states as results."""
    text = prose_of(source)
    found = []
    for match in PROSE_NUMBER.finditer(text):
        before = text[max(0, match.start() - 40):match.start()]
        if NAMING.search(before):
            continue
        value = _value(match.group(0))
        if value is None:
            continue
        if float(value).is_integer() and 1900 <= value <= 2039 and "," not in match.group(0):
            continue  # a year
        context = " ".join(text[max(0, match.start() - 50):match.end() + 30].split())
        found.append(ProseNumber(cell, match.group(0), value, context))
    return found


def chapters_named(source: str) -> set[int]:
    """The chapter numbers a markdown cell mentions ("chapter 2", "chapters 6 and 9")."""
    named = set()
    for match in CHAPTER_NAMES.finditer(source):
        numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
        if re.search(r"\d\s*(?:[-\u2013]|to)\s*\d", match.group(1)) and len(numbers) == 2:
            numbers = list(range(numbers[0], numbers[1] + 1))
        named.update(numbers)
    return named


def figure_texts(cell) -> list[str]:
    """A code cell's figure caption and alt text, which are prose too."""
    mystnb = cell.get("metadata", {}).get("mystnb", {})
    return [text for text in (mystnb.get("figure", {}).get("caption"), mystnb.get("image", {}).get("alt")) if text]


class Chapter:
    """One notebook's prose and the numbers that back it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.cells = json.loads(self.path.read_text())["cells"]
        code = [cell for cell in self.cells if cell["cell_type"] == "code"]
        self.output_numbers = set().union(*(numbers_in_code_or_output(output_text(c)) for c in code)) if code else set()
        self.code_numbers = set().union(*(numbers_in_code_or_output(_joined(c["source"])) for c in code)) if code else set()

    @property
    def number(self) -> int:
        return int(self.path.name[:2])

    def prose(self):
        """(cell index, text) for every markdown cell, caption and alt text."""
        for index, cell in enumerate(self.cells):
            if cell["cell_type"] == "markdown":
                yield index, _joined(cell["source"])
            else:
                for text in figure_texts(cell):
                    yield index, text


def unbacked_numbers(path: Path, allowed: set[float] = frozenset(), chapters: dict | None = None) -> list[ProseNumber]:
    """Every number in ``path``'s prose that no output, code, named chapter's output or
    allow-list entry backs. ``chapters`` maps chapter numbers to :class:`Chapter`
    objects (loaded from the same folder when None)."""
    chapter = Chapter(path)
    if chapters is None:
        chapters = {Chapter(p).number: Chapter(p) for p in sorted(Path(path).parent.glob("[0-9][0-9]_*.ipynb"))}
    backed_here = chapter.output_numbers | chapter.code_numbers | {_key(v) for v in ALLOWED | set(allowed)}
    missing = []
    for index, text in chapter.prose():
        named = set().union(*(chapters[n].output_numbers for n in chapters_named(text) if n in chapters), set())
        for number in prose_numbers(text, index):
            if _key(number.value) not in backed_here | named:
                missing.append(number)
    return missing


#: Words of the test harness, which belong in the appendix on how the book is checked
#: (book/checking.md), not in a chapter's teaching text.
HARNESS_TALK = re.compile(
    r"\bnbval\b|\basserts?\b|\basserted\b|\bforeign\b|\bCPU configurations?\b|MKL_CBWR|ATEN_CPU_CAPABILITY|"
    r"ONEDNN_MAX_CPU_ISA|native_stderr_silenced|\bsimdlen\b|book's tests|book is (?:tested|validated)|"
    r"tests? of the book|validated the book|not compared|do(?:es)? not compare|\bmake test\b", re.I)
EXERCISES_HEADING = re.compile(r"^## Exercises\s*$", re.M)
SUMMARY_HEADING = re.compile(r"^## Summary\s*$", re.M)


def main_text(path: Path) -> str:
    """A chapter's main text: its markdown up to the ``## Exercises`` heading (the
    exercises, their solutions and the references are not counted)."""
    parts = []
    for cell in json.loads(Path(path).read_text())["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        source = _joined(cell["source"])
        heading = EXERCISES_HEADING.search(source)
        if heading:
            parts.append(source[:heading.start()])
            break
        parts.append(source)
    return "\n\n".join(parts)


def word_count(markdown: str) -> int:
    """Words as a reader counts them: whitespace-separated, with MyST directive lines,
    labels and HTML comments left out."""
    text = DIRECTIVE_LINE.sub(" ", HTML_COMMENT.sub(" ", markdown))
    return len(re.findall(r"\S+", text))


def summary_bullets(path: Path) -> list[str]:
    """The bullets of a chapter's ``## Summary`` section."""
    text = main_text(path)
    heading = SUMMARY_HEADING.search(text)
    if not heading:
        return []
    return [" ".join(item.split()) for item in re.split(r"^- ", text[heading.end():], flags=re.M)[1:]]


def harness_talk(path: Path) -> list[tuple[int, str]]:
    """(cell index, sentence) for every sentence of a chapter's markdown, exercises
    included, that talks about how the book is tested rather than about the result."""
    found = []
    for index, cell in enumerate(json.loads(Path(path).read_text())["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = CODE_SPAN.sub(" ", ROLE.sub(" ", _joined(cell["source"])))
        for match in HARNESS_TALK.finditer(text):
            found.append((index, " ".join(text[max(0, match.start() - 60):match.end() + 40].split())))
    return found


def main(argv: list[str]) -> int:
    paths = [Path(arg) for arg in argv] or sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))
    from tomllib import loads

    allow_file = Path(__file__).resolve().parent.parent / "tests" / "prose_numbers.toml"
    allow = loads(allow_file.read_text()) if allow_file.is_file() else {}
    total = 0
    for path in paths:
        entries = allow.get(path.stem, {}).get("allowed", [])
        missing = unbacked_numbers(path, {float(entry["value"]) for entry in entries})
        total += len(missing)
        talk = harness_talk(path)
        bullets = [len(bullet.split()) for bullet in summary_bullets(path)]
        total += len(talk) + sum(count > MAX_SUMMARY_BULLET_WORDS for count in bullets)
        words = word_count(main_text(path))
        total += words > MAX_MAIN_TEXT_WORDS
        print(f"{path.name}: {words} words of main text (at most {MAX_MAIN_TEXT_WORDS}), summary bullets of "
              f"{bullets} words (at most {MAX_SUMMARY_BULLET_WORDS}), {len(missing)} number(s) in prose "
              f"without a source, {len(talk)} sentence(s) of harness talk")
        for number in missing:
            print(f"  number {number}")
        for index, sentence in talk:
            print(f"  harness talk, cell {index}: \u2026{sentence}\u2026")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
