"""The built HTML book (`make book` runs before the tests in `make test`)."""

import re

import pytest

from conftest import ROOT, toc_files

HTML = ROOT / "_build" / "html"


@pytest.fixture(scope="module")
def chapter_pages():
    if not (HTML / "index.html").is_file():
        pytest.fail("no built book in _build/html: run `make book` (make test does)")
    chapters = [entry for entry in toc_files() if entry.startswith("notebooks/")]
    return {entry.split("/")[1]: (HTML / f"{entry}.html").read_text() for entry in chapters}


def test_every_chapter_is_rendered_with_math_code_outputs_and_figures(chapter_pages):
    for name, page in chapter_pages.items():
        assert 'class="math' in page, f"{name}: no math"
        # MathJax ships with the book (sphinx-mathjax-offline), so equations render offline;
        # tests/test_browser.py checks that they are typeset with the network blocked.
        assert '<script defer="defer" src="../_static/mathjax/tex-chtml.js' in page, f"{name}: MathJax not local"
        assert not re.search(r'<script[^>]+src="(https?:)?//', page), f"{name}: a script from the network"
        assert 'class="cell_output' in page, f"{name}: no outputs"
        assert re.search(r'<img[^>]+src="\.\./_images/[^"]+\.png"', page), f"{name}: no figure"
        assert "highlight-ipython3" in page, f"{name}: no highlighted code"


def test_exercises_have_folded_solutions_and_references_render(chapter_pages):
    for name, page in chapter_pages.items():
        assert page.count('class="exercise admonition"') >= 4, name
        assert page.count('class="solution dropdown admonition"') >= 4, name
        assert 'role="doc-footnote"' in page, f"{name}: the reference list is empty"


def test_pages_have_launch_and_download_buttons(chapter_pages):
    for name, page in chapter_pages.items():
        assert "colab.research.google.com" in page, f"{name}: no Colab button"
        assert "mybinder.org" in page, f"{name}: no Binder button"
        assert f"_sources/notebooks/{name}.ipynb" in page, f"{name}: no download button"


def test_chapters_are_numbered_and_front_matter_exists(chapter_pages):
    for name, page in chapter_pages.items():
        number = int(name[:2])
        assert f'<span class="section-number">{number}.1. </span>' in page, f"{name}: not numbered"
    for page in ("book/intro", "book/how_to_use", "book/notation", "book/glossary", "book/references",
                 "book/course"):
        assert (HTML / f"{page}.html").is_file(), page
    assert "Shannon" in (HTML / "book/references.html").read_text()
    assert (HTML / "_static/mathjax/tex-chtml.js").is_file()


def test_the_course_page_links_every_exercise_it_names():
    """book/course.md names exercises by label; each must resolve to a chapter's exercise."""
    course = (HTML / "book/course.html").read_text()
    source = (ROOT / "book/course.md").read_text()
    labels = re.findall(r"\{ref\}`(ch\d\d-ex-[a-z-]+)`", source)
    assert len(labels) >= 20
    for label in set(labels):
        chapter = next(entry for entry in toc_files() if entry.startswith(f"notebooks/{label[2:4]}_"))
        assert f'href="../{chapter}.html#{label}"' in course, f"course page: {label} does not link to {chapter}"
    assert "Handing out notebooks without solutions" in course and "ten-week" in course.lower()


def test_every_figure_renders_with_its_caption_and_alt_text(chapter_pages):
    """Captions and alt text are cell metadata (CONTRIBUTING.md); MyST-NB must render them."""
    import nbformat

    for name, page in chapter_pages.items():
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        figures = sum(1 for cell in nb.cells if cell.cell_type == "code"
                      and any("image/png" in out.get("data", {}) for out in cell.outputs))
        assert page.count("<figcaption") >= figures, f"{name}: {figures} figures, fewer captions rendered"
        images = re.findall(r'<img[^>]+src="\.\./_images/[^"]+"[^>]*>', page)
        assert len(images) >= figures, name
        for image in images:
            alt = re.search(r'alt="([^"]*)"', image)
            assert alt and len(alt.group(1).split()) >= 4, f"{name}: an image without alt text: {image[:120]}"
