"""Browser tests: Playwright drives Debian's Chromium against pytest-django's
``live_server`` (a real HTTP server in a thread, sharing the SQLite test
file). Screenshots go to ``test-artifacts/screenshots/``; with
``GUST_UPDATE_SCREENSHOTS=1`` the main pages are also copied to
``docs/screenshots/`` for the README."""

import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
DOCS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000  # the longest any page may take to show what a test waits for


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (bin/test installs it)")
    # Playwright's sync API keeps an asyncio loop in this thread, which makes
    # Django refuse ORM calls as "async unsafe". Nothing here runs
    # concurrently (Playwright calls and ORM calls alternate in one thread),
    # so the check is lifted for as long as the browser lives.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    expect.set_options(timeout=TIMEOUT_MS)
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(autouse=True)
def quick_settings(settings):
    # The live server runs in this process, so these apply to it too.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Room for every page a test keeps open, plus streams of earlier tests
    # that the server has not noticed are closed yet.
    settings.GUST = {**settings.GUST, "LIVE_MAX_STREAMS": 20, "LIVE_STREAM_SECONDS": 5.0, "LIVE_KEEPALIVE": 1.0}


@pytest.fixture
def people(transactional_db):
    made = {name: User.objects.create_user(name, f"{name}@example.com", "pw") for name in ("alice", "bob", "olga")}
    made["olga"].user_permissions.add(
        *Permission.objects.filter(
            codename__in=["operate_executions", "fix_tasks", "complete_actions", "manage_tracking", "view_approval"]
        )
    )
    return made


@pytest.fixture
def open_as(browser, live_server):
    """open_as(username) -> a logged-in page in its own browser context (own cookies)."""
    contexts = []

    def _open(username: str):
        context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.goto("/accounts/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", "pw")
        page.click("button[type=submit]")
        expect(page.locator(".topnav .who")).to_have_text(username)
        return page

    yield _open
    for context in contexts:
        context.close()


def shoot(page, name: str, *, docs: bool = False, full_page: bool = True) -> Path:
    """Save a screenshot of the whole page (or, ``full_page=False``, of what
    the window shows: for a page too long to read in the README); a main page
    (``docs=True``) is also copied to docs/screenshots/ when
    GUST_UPDATE_SCREENSHOTS=1."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if docs and os.environ.get("GUST_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS / path.name)
    return path
