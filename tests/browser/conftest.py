"""Browser fixtures: Playwright driving Debian's Chromium against pytest-django's live server.

Without Chromium the browser tests are skipped with instructions, except under
CI (CI=true), where a skipped browser test would hide a broken page: they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, sync_playwright

from tests.browser.chromium import CHROMIUM_ARGS, chromium_executable

INSTALL_HINT = "Chromium is not installed: run `sudo apt-get install chromium` (Debian) to run the browser tests."
ADMIN_PASSWORD = "browser-admin-pass-1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = chromium_executable()
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(INSTALL_HINT + " CI must run the browser tests.")
    pytest.skip(INSTALL_HINT)


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser tab; the test fails if the page logs a script error or CSP violation."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, ignore_https_errors=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems: list[str] = []

    def on_page_error(error: Error) -> None:
        problems.append(f"script error: {error}")

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    page.on("pageerror", on_page_error)
    page.on("console", on_console)
    yield page
    context.close()
    assert not problems, problems


@pytest.fixture
def admin_user(transactional_db):
    return get_user_model().objects.create_superuser("admin", "admin@example.com", ADMIN_PASSWORD)


def log_in(
    page: Page, base_url: str, username: str = "admin", password: str = ADMIN_PASSWORD
) -> None:
    """Sign in through the login page (as an admin would)."""
    page.goto(base_url + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


@pytest.fixture
def admin_page(page: Page, live_server, admin_user) -> Page:
    """A page signed in as a superuser, showing the Mail Server page."""
    log_in(page, live_server.url)
    page.wait_for_url("**/admin/general-settings/mail-server/")
    return page
