"""The configuration reference (docs/configuration.md) names every environment variable
and setting the settings module reads, each exactly once, and nothing that does not exist."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import mailconfig.settings as project_settings

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "configuration.md"
# The modules that read the environment for the settings.
SETTINGS_SOURCES = [ROOT / "mailconfig" / "settings.py", ROOT / "mailconfig" / "environment.py"]
# Django settings an operator may override in a settings module, besides every MAILCONFIG_*.
OVERRIDABLE = {
    "EMAIL_BACKEND",
    "TASKS",
    "DATA_DIR",
    "CACHES",
    "DEFAULT_FROM_EMAIL",
    "SERVER_EMAIL",
    "ADMINS",
}
VARIABLE_NAME = re.compile(r"^(DJANGO|MAILCONFIG)_[A-Z0-9_]+$|^(DATABASE_URL|FORCE_SCRIPT_NAME)$")


def reference_table(heading: str) -> list[list[str]]:
    """The rows of the first table under ``## heading``: for each, the names in backticks
    of its first cell."""
    section = REFERENCE.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert len(rows) > 2, f"no table under {heading!r}"
    header, separator, *body = rows
    assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", separator), f"broken table under {heading!r}"
    columns = header.count("|")
    names = []
    for row in body:
        # A row with another number of cells is not part of the table GitHub/MkDocs render.
        assert row.count("|") - row.count("\\|") == columns, f"broken row: {row[:60]}"
        first_cell = row.split("|")[1]
        names.append(re.findall(r"`([A-Z][A-Z0-9_]*)", first_cell))
    return names


def variables_read_by_settings() -> set[str]:
    """Names of environment variables passed to a call in the settings' sources."""
    found = set()
    for source in SETTINGS_SOURCES:
        if not source.exists():
            continue
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call):
                for argument in [*node.args, *(k.value for k in node.keywords)]:
                    value = argument.value if isinstance(argument, ast.Constant) else None
                    if isinstance(value, str) and VARIABLE_NAME.match(value):
                        found.add(value)
    return found


def test_both_reference_tables_are_whole_tables():
    assert reference_table("Environment variables")
    assert reference_table("Django settings")


def test_every_environment_variable_the_settings_read_is_documented_once():
    documented = Counter(name for row in reference_table("Environment variables") for name in row)
    read = variables_read_by_settings()
    assert {"DJANGO_HTTPS", "DATABASE_URL"} <= read  # the scan finds them
    assert {name: documented[name] for name in read if documented[name] != 1} == {}


def test_every_setting_an_operator_may_override_is_documented_once():
    variables = Counter(name for row in reference_table("Environment variables") for name in row)
    settings = Counter(name for row in reference_table("Django settings") for name in row)
    mailconfig = {name for name in dir(project_settings) if name.startswith("MAILCONFIG_")}
    # A MAILCONFIG_* setting named like its variable is documented by the variable's row.
    counts = {name: variables[name] + settings[name] for name in mailconfig}
    counts |= {name: settings[name] for name in OVERRIDABLE}
    assert {name: count for name, count in counts.items() if count != 1} == {}


def test_the_reference_names_nothing_that_does_not_exist():
    settings = {name for row in reference_table("Django settings") for name in row}
    assert settings - OVERRIDABLE - set(dir(project_settings)) == set()
    variables = {name for row in reference_table("Environment variables") for name in row}
    code = "\n".join(
        path.read_text()
        for pattern in ("**/*.py", "Makefile")
        for path in ROOT.glob(pattern)
        if ".venv" not in path.parts
    )
    assert {name for name in variables if name not in code} == set()
