"""A deterministic writer for the small YAML subset the compose file uses.

Written here rather than with a YAML library so the committed file is byte for byte stable
(key order, quoting, no line folding) whatever library version renders it: block mappings,
block sequences of scalars, strings, integers, booleans, and `{}` / `[]`. A string, key or
value, that a YAML 1.1 reader could take for anything else (a number, a boolean such as `on`
or `y`, null) is written JSON-quoted, which YAML reads back unchanged; the tests read the
committed file back with PyYAML.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

Node = str | int | bool | Mapping[str, "Node"] | Sequence["Node"]

INDENT = "  "
# Plain (unquoted) scalars: conservative, so no YAML implementation reads them differently.
PLAIN_RE = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")
KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


class YamlSubsetError(ValueError):
    """A document outside the subset this module writes."""


def key(name: str) -> str:
    """A mapping key: plain when no YAML 1.1 reader can take it for anything but a string."""
    if not KEY_RE.match(name):
        raise YamlSubsetError(f"key {name!r} is outside the subset")
    return scalar(name)


def scalar(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if PLAIN_RE.match(value) and value.lower() not in RESERVED:
        return value
    return json.dumps(value, ensure_ascii=False)


def dump(node: Mapping[str, Node], header: str = "") -> str:
    """The document: `header` lines as comments, then the mapping."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += _mapping(node, 0)
    return "\n".join(lines) + "\n"


def _mapping(node: Mapping[str, Node], depth: int) -> list[str]:
    out: list[str] = []
    pad = INDENT * depth
    for name, value in node.items():
        out += _entry(f"{pad}{key(name)}:", value, depth)
    return out


def _entry(prefix: str, value: Node, depth: int) -> list[str]:
    if isinstance(value, Mapping):
        return [f"{prefix} {{}}"] if not value else [prefix, *_mapping(value, depth + 1)]
    if isinstance(value, str | int | bool):
        return [f"{prefix} {scalar(value)}"]
    if not value:
        return [f"{prefix} []"]
    pad = INDENT * (depth + 1)
    items = []
    for item in value:
        if not isinstance(item, str | int | bool):
            raise YamlSubsetError("sequences hold scalars only in this subset")
        items.append(f"{pad}- {scalar(item)}")
    return [prefix, *items]
