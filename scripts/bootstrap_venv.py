"""Create the virtualenv, even on a Debian machine without python3-venv's ensurepip.

Debian's plain python3 lacks ``ensurepip``; then we create the venv without pip
and install pip from its wheel on the package index, which the wheel can do by
itself (``python pip.whl/pip install pip.whl``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
import venv
from pathlib import Path

INDEX_JSON = os.environ.get("PIP_BOOTSTRAP_JSON", "https://pypi.org/pypi/pip/json")


def has_pip(python: Path) -> bool:
    return subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode == 0


def install_pip_from_wheel(python: Path) -> None:
    with urllib.request.urlopen(INDEX_JSON, timeout=60) as response:
        release = json.load(response)
    wheel = next(u for u in release["urls"] if u["filename"].endswith(".whl"))
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / wheel["filename"]
        with urllib.request.urlopen(wheel["url"], timeout=120) as response:
            target.write_bytes(response.read())
        subprocess.run([python, f"{target}/pip", "install", "--quiet", str(target)], check=True)


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".venv")
    python = root / "bin" / "python"
    if python.exists() and has_pip(python):
        return
    print(f"Creating virtualenv in {root}")
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
    except (subprocess.CalledProcessError, OSError):
        venv.EnvBuilder(with_pip=False, clear=True).create(root)
    if not has_pip(python):
        print("This Python has no ensurepip; installing pip into the virtualenv from the index.")
        install_pip_from_wheel(python)


if __name__ == "__main__":
    main()
