"""Finding elements in a page as a browser would parse it, not as the template spells it
(attribute order, quotes and whitespace do not matter)."""

from __future__ import annotations

from django.test.html import Element, parse_html


def elements(html: str, tag: str | None = None, **attributes: str) -> list[Element]:
    """The elements of ``html`` named ``tag`` (any, if None) that carry ``attributes``
    (``data_testid="x"`` means ``data-testid="x"``), in document order."""
    wanted = {name.replace("_", "-"): value for name, value in attributes.items()}
    found: list[Element] = []

    def walk(node: Element | str) -> None:
        if isinstance(node, str):
            return
        have = dict(node.attributes)
        if (tag is None or node.name == tag) and all(
            have.get(name) == value for name, value in wanted.items()
        ):
            found.append(node)
        for child in node.children:
            walk(child)

    walk(parse_html(html))
    return found
