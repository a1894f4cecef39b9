"""A rendered page read as assistive technology reads it: elements by role and accessible name,
form fields by label. Tests assert on these rather than on the page's exact markup."""

from __future__ import annotations

import re
from collections.abc import Iterator

from django.test.html import Element, parse_html

HEADINGS = {f"h{level}" for level in range(1, 7)}
INPUT_ROLES = {
    "submit": "button",
    "button": "button",
    "checkbox": "checkbox",
    "file": "file",
    "number": "spinbutton",
}


def page(response) -> Element:
    """The response's HTML as a tree of django.test.html elements."""
    return parse_html(response.content.decode())


def _walk(node: Element, ancestors: tuple[Element, ...] = ()) -> Iterator[tuple[Element, tuple]]:
    for child in node.children:
        if isinstance(child, Element):
            yield child, ancestors
            yield from _walk(child, (*ancestors, child))


def attribute(element: Element, name: str) -> str | None:
    for key, value in element.attributes:
        if key == name:
            return value if value is not None else ""
    return None


def text(node: Element | str) -> str:
    """The text a reader hears, with runs of white space as one space."""
    if isinstance(node, str):
        return node
    if attribute(node, "aria-hidden") == "true":
        return ""
    return re.sub(r"\s+", " ", " ".join(text(child) for child in node.children)).strip()


def role(element: Element) -> str | None:
    explicit = attribute(element, "role")
    if explicit:
        return explicit
    name = element.name
    if name == "a" and attribute(element, "href") is not None:
        return "link"
    if name in HEADINGS:
        return "heading"
    if name == "input":
        kind = attribute(element, "type") or "text"
        return None if kind == "hidden" else INPUT_ROLES.get(kind, "textbox")
    if name == "section" and (
        attribute(element, "aria-labelledby") or attribute(element, "aria-label")
    ):
        return "region"
    if name == "th":
        return "rowheader" if attribute(element, "scope") == "row" else "columnheader"
    return {
        "button": "button",
        "nav": "navigation",
        "main": "main",
        "form": "form",
        "table": "table",
        "tr": "row",
        "td": "cell",
    }.get(name)


def _by_id(tree: Element, ids: str) -> str:
    found = {attribute(el, "id"): el for el, _ in _walk(tree) if attribute(el, "id")}
    return " ".join(text(found[one]) for one in ids.split() if one in found)


def name(tree: Element, element: Element, ancestors: tuple[Element, ...] = ()) -> str:
    """The accessible name: aria-labelledby, aria-label, the field's label, or the text."""
    if labelledby := attribute(element, "aria-labelledby"):
        return _by_id(tree, labelledby)
    if label := attribute(element, "aria-label"):
        return label
    if element.name == "table":
        captions = [child for child in element.children if getattr(child, "name", "") == "caption"]
        return text(captions[0]) if captions else ""
    if element.name in ("input", "select", "textarea"):
        field_id = attribute(element, "id")
        for label_element, _ in _walk(tree):
            if label_element.name == "label" and attribute(label_element, "for") == field_id:
                return text(label_element)
        wrapping = [a for a in ancestors if a.name == "label"]
        if wrapping:
            return text(wrapping[-1])
    return text(element)


def description(tree: Element, element: Element) -> str:
    """What aria-describedby ties to the element: its help and its errors."""
    return _by_id(tree, attribute(element, "aria-describedby") or "")


def find_all(tree: Element, role_name: str, named: str | None = None) -> list[Element]:
    """Elements of a role, with the accessible name `named` when given."""
    return [
        element
        for element, ancestors in _walk(tree)
        if role(element) == role_name and (named is None or name(tree, element, ancestors) == named)
    ]


def find(tree: Element, role_name: str, named: str) -> Element:
    """The one element of that role and name."""
    found = find_all(tree, role_name, named)
    assert len(found) == 1, f"{len(found)} {role_name}(s) named {named!r}"
    return found[0]


def form_of(tree: Element, element: Element) -> Element:
    """The form an element belongs to."""
    for candidate, ancestors in _walk(tree):
        if candidate is element:
            return next(a for a in reversed(ancestors) if a.name == "form")
    raise AssertionError("the element is not in the page")


def inputs(tree: Element, field_name: str) -> list[Element]:
    """The inputs that send `field_name`, hidden ones included."""
    return [
        element
        for element, _ in _walk(tree)
        if element.name == "input" and attribute(element, "name") == field_name
    ]


def rows(tree: Element, table_name: str) -> list[list[str]]:
    """The text of each cell of the table named `table_name`, a list per body row."""
    table = find(tree, "table", table_name)
    cells = [[text(cell) for cell in find_all(row, "cell")] for row in find_all(table, "row")]
    return [row for row in cells if row]


def hrefs(tree: Element) -> list[str]:
    """Where each link of the page leads."""
    return [attribute(link, "href") or "" for link in find_all(tree, "link")]


def title(tree: Element) -> str:
    """The document's title, as the browser's tab shows it."""
    return next(text(element) for element, _ in _walk(tree) if element.name == "title")
