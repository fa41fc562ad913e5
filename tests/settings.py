"""Settings for the test run: the project's settings with a throw-away data directory."""

import atexit
import os
import shutil
import tempfile

if "MAILCONFIG_DATA_DIR" not in os.environ:
    _data_dir = tempfile.mkdtemp(prefix="mailconfig-test-")
    os.environ["MAILCONFIG_DATA_DIR"] = _data_dir
    atexit.register(shutil.rmtree, _data_dir, ignore_errors=True)
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-" + "x" * 40)
# Playwright's sync API runs an event loop in the test thread; Django's ORM refuses
# to run beside one unless told it is safe (it is: tests are single-threaded there).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from mailconfig.settings import *  # noqa: F403

MAILCONFIG_ENCRYPTION_KEYS = ["hUEpZ9kS2E3vBV3d7w0a0R5uVtyNfPMh4eQCWUnXeKk="]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MAILCONFIG_TIMEOUT = 5.0

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not memory, so tests can read the raw database file for leaked secrets.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}  # noqa: F405
    # A worker process started by a test may wait less than 20 s for SQLite's write lock,
    # so that a lock outlasting it takes seconds to hold, not minutes.
    if os.environ.get("TEST_SQLITE_BUSY_TIMEOUT"):
        DATABASES["default"]["OPTIONS"]["timeout"] = float(os.environ["TEST_SQLITE_BUSY_TIMEOUT"])  # noqa: F405

# xdist workers share the data directory: each keeps its own error-mail throttle state,
# or one worker's clearing it between tests would reset another's mid-test.
CACHES["error_reports"]["LOCATION"] += "-" + os.environ.get("PYTEST_XDIST_WORKER", "main")  # noqa: F405
