"""Debian's Chromium for Playwright: where it is and how to launch it here.

Shared by the browser tests (tests/browser/conftest.py) and scripts/screenshot.py.
Playwright cannot download its own browser on these machines; these flags keep
Debian's build from reaching out to Google's services or needing a GPU.
"""

from __future__ import annotations

import shutil

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_executable() -> str | None:
    """The installed Chromium (Debian names it chromium, some others chromium-browser)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")
