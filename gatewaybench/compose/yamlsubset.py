"""A deterministic writer, and a strict reader, for the small YAML subset the compose file uses.

The compose file is generated text, so it needs no YAML library: block mappings, block
sequences of scalars, strings, integers, booleans, and `{}` / `[]`. A string that could be read
as anything else (a number, a boolean, a key) is written JSON-quoted, which YAML reads back
unchanged. The reader accepts exactly what the writer produces and refuses everything else, so
the tests parse the committed file with it instead of trusting a lenient parser.
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
    """Text outside the subset this module writes."""


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
    for key, value in node.items():
        if not KEY_RE.match(key):
            raise YamlSubsetError(f"key {key!r} is outside the subset")
        out += _entry(f"{pad}{key}:", value, depth)
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


def load(text: str) -> dict[str, Node]:
    """Parse text written by `dump` (comments and blank lines allowed); strict otherwise."""
    lines = [
        (n, raw) for n, raw in enumerate(text.splitlines(), 1)
        if raw.strip() and not raw.lstrip().startswith("#")
    ]  # fmt: skip
    result, rest = _read_mapping(lines, 0)
    if rest:
        raise YamlSubsetError(f"line {rest[0][0]}: unexpected indentation")
    return result


Lines = list[tuple[int, str]]


def _indent_of(raw: str, lineno: int) -> int:
    spaces = len(raw) - len(raw.lstrip(" "))
    if "\t" in raw[: spaces + 1] or spaces % len(INDENT):
        raise YamlSubsetError(f"line {lineno}: indentation must be multiples of two spaces")
    return spaces // len(INDENT)


def _read_mapping(lines: Lines, depth: int) -> tuple[dict[str, Node], Lines]:
    out: dict[str, Node] = {}
    while lines and _indent_of(lines[0][1], lines[0][0]) == depth:
        lineno, raw = lines[0]
        key, sep, rest = raw.strip().partition(":")
        if not sep or not KEY_RE.match(key) or (rest and not rest.startswith(" ")):
            raise YamlSubsetError(f"line {lineno}: expected `key: value`, got {raw.strip()!r}")
        if key in out:
            raise YamlSubsetError(f"line {lineno}: duplicate key {key!r}")
        lines = lines[1:]
        rest = rest.strip()
        if rest:
            out[key] = _read_inline(rest, lineno)
        elif lines and lines[0][1].strip().startswith("- "):
            out[key], lines = _read_sequence(lines, depth + 1)
        else:
            out[key], lines = _read_mapping(lines, depth + 1)
            if not out[key]:
                raise YamlSubsetError(f"line {lineno}: {key!r} has no value")
    if lines and _indent_of(lines[0][1], lines[0][0]) > depth:
        raise YamlSubsetError(f"line {lines[0][0]}: unexpected indentation")
    return out, lines


def _read_sequence(lines: Lines, depth: int) -> tuple[list[Node], Lines]:
    items: list[Node] = []
    while lines and lines[0][1].strip().startswith("- "):
        lineno, raw = lines[0]
        if _indent_of(raw, lineno) != depth:
            raise YamlSubsetError(f"line {lineno}: sequence item at the wrong indentation")
        items.append(_read_scalar(raw.strip()[2:], lineno))
        lines = lines[1:]
    return items, lines


def _read_inline(text: str, lineno: int) -> Node:
    if text == "{}":
        return {}
    if text == "[]":
        return []
    return _read_scalar(text, lineno)


def _read_scalar(text: str, lineno: int) -> str | int | bool:
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise YamlSubsetError(f"line {lineno}: bad quoted string: {exc}") from None
        if not isinstance(value, str):
            raise YamlSubsetError(f"line {lineno}: quoted value is not a string")
        return value
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    if PLAIN_RE.match(text) and text.lower() not in RESERVED:
        return text
    raise YamlSubsetError(f"line {lineno}: {text!r} is outside the subset")
