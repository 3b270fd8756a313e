"""OData URL pieces the sandbox must read like Graph does: key segments, string literals and ``$filter``.

Kept apart from the routes because the decoding order matters (percent-decoding per segment first, then the
OData literal with doubled quotes) and tests pin it down.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote

from .rules import GraphError


def split_path(raw_path: str) -> list[str]:
    """Split a raw (still percent-encoded) path into decoded segments; an encoded ``/`` stays inside a segment."""
    segments = raw_path.strip("/").split("/")
    return [unquote(s) for s in segments] if segments != [""] else []


def decode_literal(inner: str) -> str:
    """Decode the inside of an OData string literal (``''`` stands for ``'``); a lone quote is a syntax error."""
    if "'" not in inner:
        return inner
    if inner.replace("''", "").count("'"):
        raise GraphError(
            400, "BadRequest", f"Syntax error: character ''' is not valid at position {inner.find(chr(39))}."
        )
    return inner.replace("''", "'")


def encode_literal(value: str) -> str:
    """The inverse of :func:`decode_literal`, for building URLs in tests and clients."""
    return value.replace("'", "''")


def key_segment(segment: str, collection: str, keys: tuple[str, ...]) -> str | None:
    """Read ``collection(key='value')``; names compare case-insensitively, like Graph's segments.

    Returns the decoded value, or None if the segment is not of that form.
    """
    open_at = segment.find("(")
    if open_at < 0 or not segment.endswith(")"):
        return None
    if segment[:open_at].lower() != collection.lower():
        return None
    inner = segment[open_at + 1 : -1]
    name, eq, literal = inner.partition("=")
    if not eq or name.strip().lower() not in {k.lower() for k in keys}:
        return None
    literal = literal.strip()
    if len(literal) < 2 or literal[0] != "'" or literal[-1] != "'":
        return None
    return decode_literal(literal[1:-1])


_FILTER_CLAUSE: Final = re.compile(r"\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)
_FILTER_IN: Final = re.compile(r"\s*(\w+)\s+in\s+\((.*)\)\s*", re.IGNORECASE)
_IN_ITEM: Final = re.compile(r"\s*'((?:[^']|'')*)'\s*")


def _split_or(text: str) -> list[str]:
    """Split on `` or `` outside string literals."""
    parts: list[str] = []
    start = 0
    in_quote = False
    i = 0
    lower = text.lower()
    while i < len(text):
        ch = text[i]
        if ch == "'":
            in_quote = not in_quote  # a doubled quote toggles twice: net effect none
        elif not in_quote and ch.isspace():
            m = re.match(r"\s+or\s+", lower[i:])
            if m:
                parts.append(text[start:i])
                i += m.end()
                start = i
                continue
        i += 1
    parts.append(text[start:])
    return parts


def _split_in_items(text: str) -> list[str] | None:
    items: list[str] = []
    rest = text
    while rest.strip():
        m = _IN_ITEM.match(rest)
        if m is None:
            return None
        items.append(m.group(1).replace("''", "'"))
        rest = rest[m.end() :]
        if rest.startswith(","):
            rest = rest[1:]
        elif rest.strip():
            return None
    return items


def parse_eq_filter(text: str, allowed: dict[str, str], resource: str) -> list[tuple[str, list[str]]]:
    """Parse ``prop eq 'v' [or prop eq 'w'...]`` and ``prop in ('v','w')`` into (canonical prop, values).

    ``allowed`` maps lower-cased property names to their canonical spelling; anything else is the 400 Graph
    gives for an unsupported filter.
    """
    clauses: list[tuple[str, list[str]]] = []
    for part in _split_or(text):
        m = _FILTER_CLAUSE.fullmatch(part)
        if m is not None:
            name, values = m.group(1), [m.group(2).replace("''", "'")]
        else:
            m = _FILTER_IN.fullmatch(part)
            items = _split_in_items(m.group(2)) if m is not None else None
            if m is None or items is None:
                raise GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")
            name, values = m.group(1), items
        canonical = allowed.get(name.lower())
        if canonical is None:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"Unsupported or invalid query filter clause specified for property '{name}' of resource '{resource}'.",
            )
        clauses.append((canonical, values))
    return clauses
