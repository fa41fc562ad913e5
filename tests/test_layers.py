"""The layers contract (pyproject.toml, checked by ``lint-imports`` in ``make test``) places
every module of settings_app: a new page module or floor module must say which it is."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def contract_layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [layers] = [
        contract["layers"]
        for contract in config["tool"]["importlinter"]["contracts"]
        if contract["type"] == "layers"
    ]
    return [{name.strip() for name in layer.replace("|", ":").split(":")} for layer in layers]


def settings_app_modules() -> set[str]:
    package = ROOT / "settings_app"
    modules = {f"settings_app.{path.stem}" for path in package.glob("*.py")}
    modules |= {
        f"settings_app.{path.name}" for path in package.iterdir() if (path / "__init__.py").exists()
    }
    return modules - {"settings_app.__init__", "settings_app.migrations"}


def test_every_settings_app_module_is_in_exactly_one_layer():
    layers = contract_layers()
    for module in settings_app_modules():
        placed = [index for index, layer in enumerate(layers) if module in layer]
        assert len(placed) == 1, f"{module} is in {len(placed)} layers of the contract"


def test_the_layers_run_pages_oauth_sender_floor():
    layers = contract_layers()
    assert "settings_app.views" in layers[0]
    assert layers[1:3] == [{"oauth"}, {"sender"}]
    assert "settings_app.models" in layers[3]
