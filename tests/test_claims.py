"""Every sentence true, and kept true (CONTRIBUTING.md, "Claims").

Numbers in a chapter's prose must be found among that chapter's outputs (as printed),
in its code (a setting or an assertion's bound), in the outputs of a chapter the same
cell names, or on the reviewed allow-list in ``tests/prose_numbers.toml``. The teaching
text stays free of test-harness talk and within its length limits.
"""

import json
import shutil
import tomllib

import pytest

from conftest import ROOT, chapter_notebooks
from rnnbook import claims

ALLOW = tomllib.loads((ROOT / "tests" / "prose_numbers.toml").read_text())
CHAPTERS = {claims.Chapter(path).number: claims.Chapter(path) for path in chapter_notebooks()}


def allowed(path) -> set[float]:
    return {float(entry["value"]) for entry in ALLOW.get(path.stem, {}).get("allowed", [])}


@pytest.mark.parametrize("path", chapter_notebooks(), ids=lambda path: path.stem)
def test_every_number_in_prose_comes_from_an_output_or_the_code(path):
    missing = claims.unbacked_numbers(path, allowed(path), CHAPTERS)
    assert not missing, (f"{path.name}: numbers in prose that no output, code, named chapter or "
                         f"allow-list entry backs:\n" + "\n".join(map(str, missing)))


@pytest.mark.parametrize("path", chapter_notebooks(), ids=lambda path: path.stem)
def test_the_teaching_text_does_not_talk_about_the_test_harness(path):
    talk = claims.harness_talk(path)
    assert not talk, (f"{path.name}: how the book is checked belongs in book/checking.md:\n"
                      + "\n".join(f"cell {index}: ...{sentence}..." for index, sentence in talk))


@pytest.mark.parametrize("path", chapter_notebooks(), ids=lambda path: path.stem)
def test_chapter_and_summary_lengths(path):
    words = claims.word_count(claims.main_text(path))
    assert words <= claims.MAX_MAIN_TEXT_WORDS, f"{path.name}: {words} words of main text"
    bullets = claims.summary_bullets(path)
    assert bullets, f"{path.name}: no summary bullets"
    long = [bullet[:80] for bullet in bullets if len(bullet.split()) > claims.MAX_SUMMARY_BULLET_WORDS]
    assert not long, f"{path.name}: summary bullets over {claims.MAX_SUMMARY_BULLET_WORDS} words: {long}"


def test_the_allow_list_is_reviewed_and_used():
    stems = {path.stem for path in chapter_notebooks()}
    for stem, section in ALLOW.items():
        assert stem in stems, f"prose_numbers.toml names {stem}, which is not a chapter"
        path = ROOT / "notebooks" / f"{stem}.ipynb"
        stated = {claims._key(number.value) for _, text in claims.Chapter(path).prose()
                  for number in claims.prose_numbers(text)}
        for entry in section["allowed"]:
            assert str(entry.get("reason", "")).strip(), f"{stem}: {entry} needs a reason"
            assert claims._key(float(entry["value"])) in stated, f"{stem}: {entry['value']} is stated nowhere: remove it"


def planted(tmp_path, stem, old, new):
    """A copy of the notebook folder in which one markdown cell says ``new`` where the
    chapter said ``old``."""
    folder = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", folder)
    path = folder / f"{stem}.ipynb"
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and old in source:
            cell["source"] = source.replace(old, new, 1)
            break
    else:
        raise AssertionError(f"{stem} has no markdown cell saying {old!r}")
    path.write_text(json.dumps(nb))
    return path


def a_backed_decimal(path):
    """A decimal that the chapter's prose states and its outputs print: the number a
    planted mismatch will change."""
    chapter = claims.Chapter(path)
    for index, text in chapter.prose():
        if chapter.cells[index]["cell_type"] != "markdown":
            continue
        for number in claims.prose_numbers(text):
            if "." in number.text and claims._key(number.value) in chapter.output_numbers:
                return number.text
    return None


@pytest.mark.parametrize("path", chapter_notebooks(), ids=lambda path: path.stem)
def test_a_planted_mismatch_is_caught(tmp_path, path):
    """Change one number the prose quotes from an output: the check must name it."""
    quoted = a_backed_decimal(path)
    if quoted is None:
        pytest.skip(f"{path.name} quotes no decimal from its outputs")
    printed_anywhere = set().union(*(c.output_numbers | c.code_numbers for c in CHAPTERS.values()))
    wrong = quoted[:-1] + str((int(quoted[-1]) + 7) % 10)
    while claims._key(float(wrong.replace(",", ""))) in printed_anywhere:
        wrong += "3"
    copy = planted(tmp_path, path.stem, quoted, wrong)
    missing = claims.unbacked_numbers(copy, allowed(path))
    assert [number.text for number in missing if number.text == wrong], (
        f"changing {quoted} to {wrong} in {path.name} went unnoticed")


def test_what_counts_as_a_number_in_prose():
    text = ("In chapter 12 (2019) we saw 4.61 against 4.50, a 1.9\u00d7 gap and 156,085 steps; "
            "`H = 256` is code, {ref}`ch02-x` a label, $h_{t-1} \\approx 0.6$ maths, "
            "[a link](https://example.org/3.14), seed 42, equation 7.")
    stated = [number.text for number in claims.prose_numbers(text)]
    assert stated == ["4.61", "4.50", "1.9", "156,085", "0.6"]
    assert claims.chapters_named("as chapters 6 and 9 showed, and chapter 2, and chapters 13\u201315") == {
        2, 6, 9, 13, 14, 15}


def test_numbers_in_outputs_are_read_as_printed():
    found = claims.numbers_in_code_or_output("ppl 4.610, 1e-08, -0.5x, lr=3e-3, 80,412 and 1_000 W_1 float32")
    assert {4.61, 1e-08, 0.5, 0.003, 80412.0, 1000.0} <= found
    assert 32.0 not in found and 1.0 not in found


def test_harness_talk_and_lengths_are_measured():
    assert claims.HARNESS_TALK.search("the next cell asserts both trends")
    assert claims.HARNESS_TALK.search("under the foreign CPU configuration")
    assert not claims.HARNESS_TALK.search("`torch.testing.assert_close` checks it")
    assert claims.word_count("```{exercise}\n:label: x\n```\nthree words here") == 3


def test_tiny_numbers_are_told_apart():
    assert claims._key(2.2e-23) != claims._key(3e-16)
    assert claims._key(-0.5) == claims._key(0.50)
    assert claims._key(80412.0) == claims._key(80412)
