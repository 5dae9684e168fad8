"""Numbers that one chapter quotes from another must equal what that chapter printed.

A notebook that restates another chapter's result (instead of spending minutes to
recompute it) holds it in a named constant; nbval keeps the source chapter's printed
output honest, and this test keeps the constant equal to it.
"""

import re

import nbformat

from conftest import NOTEBOOK_DIR

# (quoting notebook, constant name, source notebook, regex on the source's outputs);
# a constant that is a tuple equals the first matches of the regex, in order.
QUOTES = [
    ("06_lstm_from_scratch", "RNN_PERPLEXITY_CHAPTER_2",
     "02_rnn_from_scratch", r"scratch RNN \(8 epochs\)\s+(\d+\.\d+)"),
    ("11_lstm_versus_gru", "RNN_PERPLEXITY_CHAPTER_2",
     "02_rnn_from_scratch", r"scratch RNN \(8 epochs\)\s+(\d+\.\d+)"),
    ("11_lstm_versus_gru", "LSTM_PERPLEXITY_CHAPTER_6",
     "06_lstm_from_scratch", r"scratch LSTM, 8 epochs\s+(\d+\.\d+)"),
    ("11_lstm_versus_gru", "GRU_PERPLEXITY_CHAPTER_9",
     "09_gru_from_scratch", r"scratch GRU, H=149 \(8 epochs\)\s+(\d+\.\d+)"),
    ("07_lstm_in_pytorch", "CHAPTER_6_EPOCHS_1_2",
     "06_lstm_from_scratch", r"epoch\s+\d+\s+train perplexity\s+[\d.]+\s+validation perplexity\s+(\d+\.\d+)"),
    ("11_lstm_versus_gru", "ADD_ALPHA_5GRAM_CHAPTER_1",
     "01_sequences_and_language_models", r"5-gram \(alpha=0\.03\)\s+(\d+\.\d+)"),
    ("14_applications", "ONE_DIRECTION_MEDIAN",
     "13_variable_length_sequences", r"GRU, frames in order: test accuracy by seed [\d. ]+;\s+median (\d+\.\d+)"),
]


def outputs_text(name: str) -> str:
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    return "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                     for out in cell.outputs if out.output_type == "stream")


def source_text(name: str) -> str:
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    return "\n".join(cell.source for cell in nb.cells)


def test_quoted_results_equal_the_printed_originals():
    for quoting, constant, source, pattern in QUOTES:
        quoted = re.search(rf"^{constant}\s*=\s*\(?([\d., ]+?)\)?\s*(#|$)", source_text(quoting), re.M)
        assert quoted, f"{quoting} no longer defines {constant}"
        values = [float(value) for value in quoted.group(1).split(",") if value.strip()]
        printed = [float(value) for value in re.findall(pattern, outputs_text(source))][:len(values)]
        assert len(printed) == len(values), f"{source} no longer prints {len(values)} match(es) for {pattern!r}"
        assert values == printed, f"{quoting}.{constant} = {values} but {source} prints {printed}"
        if (quoting, constant) == ("06_lstm_from_scratch", "RNN_PERPLEXITY_CHAPTER_2"):
            prose_mentions = re.findall(r"RNN's (\d+\.\d+)", source_text(quoting))
            assert all(float(value) == printed[0] for value in prose_mentions), prose_mentions


CHAPTER_MENTION = re.compile(r"\b[Cc]hapters?\s+((?:\d+(?:\s*,\s*|\s+(?:and|to|or)\s+))*\d+)")


def numbered_chapters() -> int:
    """How many chapter notebooks the table of contents lists (chapters are numbered 1..n)."""
    from conftest import toc_files

    return sum(entry.startswith("notebooks/") for entry in toc_files())


def prose_pages():
    """(name, markdown text) for every chapter's prose and every book page."""
    from conftest import ROOT, chapter_notebooks

    for path in chapter_notebooks():
        nb = nbformat.read(path, as_version=4)
        yield path.name, "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    for path in sorted((ROOT / "book").glob("*.md")):
        yield path.name, path.read_text()


def test_prose_names_only_chapters_that_exist():
    """A sentence that sends the reader to 'chapter 14' needs a chapter 14 in _toc.yml."""
    last = numbered_chapters()
    dangling = []
    for name, text in prose_pages():
        for match in CHAPTER_MENTION.finditer(text):
            numbers = [int(number) for number in re.findall(r"\d+", match.group(1))]
            if any(not 1 <= number <= last for number in numbers):
                dangling.append(f"{name}: {match.group(0)!r}")
    assert not dangling, f"references to chapters beyond {last}: {dangling}"
