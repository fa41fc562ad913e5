"""Regenerate the screenshot (README and docs) of the Mail Server page.

Starts the console on a free port with a throw-away data directory, signs in
with Playwright (Debian's Chromium), fills in an example configuration and
saves a PNG. Usage: python scripts/screenshot.py docs/mail-server.png [--width 1280]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the project's packages are beside it

from tests.browser.chromium import CHROMIUM_ARGS, chromium_executable  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("output", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument(
        "--mode", default="smtp-basic", choices=["smtp-basic", "smtp-oauth", "api-google"]
    )
    args = parser.parse_args()
    chromium = chromium_executable()
    if not chromium:
        sys.exit("Chromium is needed: sudo apt-get install chromium")

    data_dir = tempfile.mkdtemp(prefix="mailconfig-shot-")
    env = {
        **os.environ,
        "MAILCONFIG_DATA_DIR": data_dir,
        "DJANGO_SUPERUSER_PASSWORD": "screenshot-pass-1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [python, "manage.py", "ensure_admin"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    port = free_port()
    server = subprocess.Popen(
        [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": 900})
            page.goto(base + "/admin/general-settings/mail-server/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", "screenshot-pass-1")
            page.click("button[type=submit]")
            page.wait_for_url("**/mail-server/")
            page.fill("#id_server_name", "smtp.example.com")
            page.fill("#id_from_address", "notifications@example.com")
            page.fill("#id_admin_address", "it-admins@example.com")
            page.check("#id_security_1", force=True)
            page.fill("#id_username", "notifications@example.com")
            page.fill("#id_password", "example-password")
            page.click("[data-testid=save]")
            page.wait_for_load_state()
            if args.mode == "smtp-oauth":
                page.click("label[for=id_auth_1]")
            elif args.mode == "api-google":
                page.click("label[for=id_mode_1]")
                page.click("label[for=id_api_provider_1]")
            page.mouse.move(0, 0)  # no hover highlight in the picture
            page.wait_for_timeout(400)  # let the buttons' colour transitions finish
            page.evaluate("document.activeElement && document.activeElement.blur()")
            args.output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.output), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
