"""The web UI in a real browser: Playwright driving Debian's chromium, headless, against a live server.

It opens the UI, uploads the bundled example image, asks for its text to be read aloud, and waits for
the answer: the recognised text and an audio player must appear, the plan panel must show both tasks
succeeded, and the page must have fetched nothing from anywhere but the server (no fonts, CDN or
analytics). A screenshot is saved in test-artifacts/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from server_helpers import READ_ALOUD, REPO, SIGN, Live, server_settings, serving

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword is deprecated)"),  # Gradio's pandas use
]


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with serving(server_settings(tmp_path_factory.mktemp("web") / "home"), ui=True) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("chromium is not installed: scripts/setup.sh --dev installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        yield launched
        launched.close()


def test_the_ui_reads_an_uploaded_image_aloud(ui_server: Live, browser: object) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(ui_server.url + "/ui/")
    box = page.locator("#request")
    box.locator("input[type=file]").set_input_files(str(SIGN))
    expect(box.get_by_role("listitem", name="File thumbnail")).to_be_visible(timeout=30_000)  # uploaded
    box.locator("textarea").fill(READ_ALOUD)
    box.locator("textarea").press("Enter")

    chat = page.locator("#chat")
    expect(chat).to_contain_text("Welcome to the baton demo", timeout=90_000)
    audio = chat.locator("audio")
    expect(audio.first).to_be_attached(timeout=30_000)
    plan = page.locator("#plan")
    expect(plan).to_contain_text("image-to-text")
    expect(plan).to_contain_text("text-to-speech")
    expect(plan).to_contain_text("builtin/espeak-ng")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-ui-read-aloud.png"), full_page=True)
    rows = plan.get_by_role("row")  # the header and one row per task
    expect(rows).to_have_count(3)
    for row in (1, 2):
        expect(rows.nth(row)).to_contain_text("succeeded")
    expect(page.locator("#run-status")).to_contain_text("succeeded")

    # the session is listed and its run recorded
    [session] = ui_server.service.store.sessions()
    [run] = ui_server.service.store.runs(session_id=session.id)
    assert run.status == "succeeded" and [t.task for t in run.tasks] == ["image-to-text", "text-to-speech"]
    # offline: everything the page loaded came from the server itself
    elsewhere = [url for url in requested if not url.startswith((ui_server.url, "data:", "blob:"))]
    assert elsewhere == []
    page.close()


def test_the_ui_resumes_a_session_with_its_media(ui_server: Live, browser: object) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    sessions = ui_server.service.store.sessions()
    if not sessions:
        pytest.skip("needs the session of the read-aloud test")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(ui_server.url + "/ui/")
    page.locator("#sessions input").click()
    page.get_by_role("option").first.click()
    chat = page.locator("#chat")
    expect(chat).to_contain_text(READ_ALOUD, timeout=30_000)
    expect(chat).to_contain_text("Welcome to the baton demo")
    expect(chat.locator("audio").first).to_be_attached(timeout=30_000)
    expect(page.locator("#trace")).to_contain_text("text-to-speech")
    page.close()


def test_with_a_token_the_ui_opens_once_with_it_in_the_address(tmp_path: Path, browser: object) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    token = "browser-token-0123456789abcdef"
    settings = server_settings(tmp_path / "home", api_token=token)
    with serving(settings, host="0.0.0.0", ui=True) as guarded:
        page = browser.new_page()
        refused = page.goto(guarded.url + "/ui/")
        assert refused is not None and refused.status == 401
        page.goto(guarded.url + "/ui/?token=" + token)
        assert page.url == guarded.url + "/ui/"  # the token left the address bar for a cookie
        box = page.locator("#request")
        box.locator("textarea").fill("say 'the token works'")
        box.locator("textarea").press("Enter")
        chat = page.locator("#chat")
        expect(chat).to_contain_text("1 of 1 task succeeded", timeout=90_000)
        expect(chat.locator("audio").first).to_be_attached(timeout=30_000)
        page.close()
