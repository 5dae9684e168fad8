"""The built book in a real browser, offline: what a reader who opens `_build/html` sees.

Headless Chromium (Debian's package; `make test` installs it where missing) opens every
page of the table of contents from `file://`, with every request that is not a local
file refused and recorded, and fails when

* a page asks the network for anything (its math, fonts or scripts must ship with the book),
* an equation is left as raw LaTeX, or MathJax reports a TeX error,
* an image does not load,
* a chapter's first solution does not unfold when its title is clicked,
* the browser console shows an error,
* the search page finds nothing for "forget gate",
* a lecture deck does not open, or its speaker view (S) does not show the notes.

A screenshot of chapter 6 is kept at `_build/browser/chapter06.png` for humans.
Under CI (`CI=true`) a missing browser or driver is a failure, never a skip.
"""

import os
import shutil
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from conftest import ROOT, toc_files

HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "browser"
SCREENSHOT_PAGE = "notebooks/06_lstm_from_scratch"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# Chromium's own background services would reach for the network on a closed machine.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGE_TIMEOUT_MS = 30_000
# Known and harmless: sphinx-thebe (which Jupyter Book 1 always loads) writes its inline
# configuration script twice on every page, so the browser refuses the second copy.
# The launch buttons do not use thebe.
KNOWN_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)
# Sphinx's search page fetches each hit's page to show a snippet under it; Chromium
# forbids a file:// page to read other files, so offline the hits appear without
# snippets and these errors are logged. Only the search page may show them.
SEARCH_SNIPPET_ERRORS = ("Access to fetch at 'file:", "Failed to load resource: net::ERR_FAILED", "Failed to fetch")


def unavailable(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must run the browser test; .ci/run and `make test` install it)")
    pytest.skip(reason)


def chromium_path():
    override = os.environ.get("CHROMIUM")
    found = override or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if not found:
        unavailable("no Chromium found (apt-get install chromium, or set CHROMIUM=/path/to/it)")
    return found


@pytest.fixture(scope="module")
def browser():
    if not (HTML / "index.html").is_file():
        pytest.fail("no built book in _build/html: run `make book` (make test does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (it is in requirements.txt: run `make env`)")
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class OfflinePage:
    """A page whose non-file requests are refused and recorded, with its console errors."""

    def __init__(self, browser):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
        self.requested, self.errors = [], []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(PAGE_TIMEOUT_MS)
        self.page.on("console", lambda message: message.type == "error" and self._error(
            f"console: {message.text}"))
        self.page.on("pageerror", lambda error: self._error(f"script error: {error}"))
        self.page.on("requestfailed", self._failed)

    def _failed(self, request):
        if not request.url.startswith("file:"):
            return
        # Leaving a page cancels its pending loads (ERR_ABORTED); for a file that is there, that
        # is the test moving on, not something a reader would meet. A missing file fails as
        # ERR_FILE_NOT_FOUND and is reported.
        path = Path(unquote(urlparse(request.url).path))
        if request.failure == "net::ERR_ABORTED" and path.is_file():
            return
        self._error(f"failed to load {request.url}: {request.failure}", request.url)

    def _error(self, text, url=""):
        if any(known in text for known in KNOWN_ERRORS):
            return
        on_search_page = self.page.url.split("?")[0].endswith("/search.html")
        if on_search_page and (url.endswith(".html") or any(known in text for known in SEARCH_SNIPPET_ERRORS)):
            return
        self.errors.append(text)

    def _route(self, route):
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:", "about:")):
            route.continue_()
        else:
            self.requested.append(url)
            route.abort("internetdisconnected")

    def open(self, entry, query=""):
        self.page.goto((HTML / f"{entry}.html").as_uri() + query, wait_until="load")
        return self.page

    def close(self):
        self.context.close()


@pytest.fixture
def offline(browser):
    page = OfflinePage(browser)
    yield page
    page.close()


TYPESET = """async () => {
    if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) return "MathJax did not load";
    await MathJax.startup.promise;
    const raw = [...document.querySelectorAll(".math")].filter(node => !node.querySelector("mjx-container"));
    const errors = document.querySelectorAll("mjx-merror");
    if (raw.length) return `${raw.length} of ${document.querySelectorAll(".math").length} equations not typeset, `
        + `the first: ${raw[0].textContent.slice(0, 80)}`;
    if (errors.length) return `${errors.length} TeX errors, the first: ${errors[0].textContent.slice(0, 80)}`;
    // A backslash that MathJax shows is a macro it read as text (\\_ in \\texttt without textmacros).
    const shown = [...document.querySelectorAll(".math mjx-container")].filter(node => node.textContent.includes("\\\\"));
    if (shown.length) return `${shown.length} equations show a backslash, the first: ${shown[0].textContent.slice(0, 80)}`;
    return "";
}"""

IMAGES = """async () => {
    const broken = [];
    for (const image of document.images) {
        image.loading = "eager";
        try { await image.decode(); } catch (error) { broken.push(image.getAttribute("src")); }
        if (!image.naturalWidth && !broken.includes(image.getAttribute("src"))) broken.push(image.getAttribute("src"));
    }
    await document.fonts.ready;  // fonts still loading would be aborted by the next page
    return broken;
}"""


def check_page(offline, entry):
    page = offline.open(entry)
    problems = []
    has_math = page.locator(".math").count() > 0
    if has_math:
        problem = page.evaluate(TYPESET)
        if problem:
            problems.append(problem)
    broken = page.evaluate(IMAGES)
    if broken:
        problems.append(f"images that do not load: {broken}")
    if entry.startswith("notebooks/"):
        if not has_math:
            problems.append("a chapter without math")
        solution = page.locator(".solution.dropdown").first
        body = solution.locator("#solution-content, section").first
        if body.is_visible():
            problems.append("the first solution is not folded")
        solution.locator(".admonition-title").click()
        try:
            body.wait_for(state="visible", timeout=5_000)
        except Exception:
            problems.append("the first solution does not unfold when clicked")
    return page, problems


def test_every_page_renders_offline_with_math_images_and_solutions(offline):
    entries = toc_files()
    assert sum(entry.startswith("notebooks/") for entry in entries) >= 15
    failures, started = {}, time.perf_counter()
    for entry in entries:
        page, problems = check_page(offline, entry)
        if entry == SCREENSHOT_PAGE:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.locator("div.math").first.scroll_into_view_if_needed()
            page.screenshot(path=SHOTS / "chapter06.png")
        problems += offline.errors
        offline.errors.clear()
        if problems:
            failures[entry] = problems
    print(f"{len(entries)} pages checked in {time.perf_counter() - started:.0f} s")
    assert not offline.requested, f"pages asked the network for: {sorted(set(offline.requested))[:10]}"
    assert not failures, "\n".join(f"{entry}: {problems}" for entry, problems in failures.items())
    assert (SHOTS / "chapter06.png").stat().st_size > 10_000


def test_search_finds_the_forget_gate_offline(offline):
    page = offline.open("search", "?q=forget+gate")
    results = page.locator("#search-results li")
    results.first.wait_for(state="attached")
    hits = results.all_inner_texts()
    assert any("LSTM" in hit for hit in hits), f"search for 'forget gate' found {hits[:5]}"
    assert not offline.requested, f"the search page asked the network for {offline.requested[:5]}"
    assert not offline.errors, offline.errors


# Lecture slides (`make slides`, tools/slides.py): every deck and its index, offline.
SLIDES = ROOT / "_build" / "slides"
DECK_CHECK = """async () => {
    const problems = [];
    if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) return ["MathJax did not load"];
    await MathJax.startup.promise;
    const typeset = document.querySelectorAll(".reveal mjx-container").length;
    if (!typeset) problems.push("no equation typeset by the math plugin");
    const errors = document.querySelectorAll("mjx-merror");
    if (errors.length) problems.push(`${errors.length} TeX errors, the first: ${errors[0].textContent.slice(0, 80)}`);
    const raw = [...document.querySelectorAll(".reveal .math")].filter(node => !node.querySelector("mjx-container"));
    if (raw.length) problems.push(`${raw.length} equations left as LaTeX, the first: ${raw[0].textContent.slice(0, 80)}`);
    // A backslash that MathJax shows is a macro it read as text (\\_ in \\texttt without textmacros).
    const shown = [...document.querySelectorAll(".reveal mjx-container")].filter(node => node.textContent.includes("\\\\"));
    if (shown.length) problems.push(`${shown.length} equations show a backslash, the first: ${shown[0].textContent.slice(0, 80)}`);
    const height = Reveal.getConfig().height;
    for (const [index, slide] of Reveal.getSlides().entries()) {
        const display = slide.style.display;
        slide.style.display = "block";
        if (slide.scrollHeight > height) problems.push(`slide ${index + 1} is ${slide.scrollHeight}px tall, more than ${height}`);
        slide.style.display = display;
    }
    for (const image of document.images) {
        image.loading = "eager";
        try { await image.decode(); } catch (error) { problems.push(`image does not load: ${image.getAttribute("src")}`); }
    }
    // Measuring the slides lays out text in faces not yet used (semibold italic, say), which
    // starts font requests; leaving the deck before they end aborts them (ERR_ABORTED), a
    // race and not a missing file. Wait for every font the layout asked for.
    await document.fonts.ready;
    return problems;
}"""


def test_slide_decks_open_offline_with_reveal_and_typeset_maths(offline):
    index = SLIDES / "index.html"
    if not index.is_file():
        pytest.fail("no slides in _build/slides: run `make slides` (make test does)")
    decks = sorted(SLIDES.glob("week*.html"))
    page = offline.page
    page.goto(index.as_uri(), wait_until="load")
    linked = page.eval_on_selector_all("a[href^='week']", "links => links.map(link => link.getAttribute('href'))")
    assert linked == [deck.name for deck in decks] and decks, f"index.html links {linked}, decks {decks}"
    failures, started = {}, time.perf_counter()
    for deck in decks:
        page.goto(deck.as_uri(), wait_until="load")
        try:
            page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=10_000)
        except Exception:
            problems = ["reveal.js did not initialise: Reveal.isReady() stayed false for 10 s"]
        else:
            problems = page.evaluate(DECK_CHECK)
            if page.evaluate("Reveal.getTotalSlides()") < 5:
                problems.append("fewer than five slides")
        problems += offline.errors
        offline.errors.clear()
        if problems:
            failures[deck.name] = problems
    print(f"{len(decks)} slide decks checked in {time.perf_counter() - started:.1f} s")
    if offline.requested:
        failures["network"] = f"slides asked the network for: {sorted(set(offline.requested))[:10]}"
    assert not failures, "\n".join(f"{deck}: {problems}" for deck, problems in failures.items())


def test_the_speaker_view_opens_offline_with_each_slides_notes(offline):
    """S in a deck opens reveal.js's speaker view (a second window): current and upcoming
    slide, a timer, and the notes of the slide shown, which follow the deck as it moves."""
    deck = SLIDES / "week06.html"
    if not deck.is_file():
        pytest.fail("no slides in _build/slides: run `make slides` (make test does)")
    page = offline.page
    page.goto(deck.as_uri(), wait_until="load")
    page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=10_000)
    page.evaluate("Reveal.slide(1)")
    notes_of = "index => Reveal.getSlides()[index].querySelector('aside.notes')?.textContent.trim() || ''"
    expected = page.evaluate(notes_of, 1)
    assert len(expected) > 100, f"the second slide of {deck.name} has no speaker notes: {expected!r}"
    with offline.context.expect_page() as opened:
        page.keyboard.press("s")
    speaker = opened.value
    speaker.on("console", lambda message: message.type == "error" and offline.errors.append(
        f"speaker view console: {message.text}"))
    speaker.wait_for_load_state("load")
    notes = speaker.locator(".speaker-controls-notes .value")
    first_words = " ".join(expected.split()[:4])
    notes.filter(has_text=first_words).wait_for(timeout=10_000)
    frames = speaker.eval_on_selector_all("iframe", "frames => frames.map(frame => frame.src)")
    assert len(frames) == 2 and all(src.startswith(deck.as_uri()) for src in frames), frames
    assert speaker.locator(".speaker-controls-notes mjx-container").count() > 0, "the notes' maths is not typeset"
    page.evaluate("Reveal.slide(2)")
    following = page.evaluate(notes_of, 2)
    if following:
        notes.filter(has_text=" ".join(following.split()[:4])).wait_for(timeout=10_000)
    speaker.close()
    assert not offline.requested, f"the speaker view asked the network for {offline.requested[:5]}"
    assert not offline.errors, offline.errors
