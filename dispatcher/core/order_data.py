"""What an order's data may hold, beyond types: the rules that keep order data inert.

An order's strings and numbers travel on into places that read them again: Argo's template
engine substitutes ``{{...}}`` (and evaluates ``{{=...}}``) inside parameter values, Go's strict
JSON refuses ``NaN`` and numbers out of range, and ``order_id`` lands in logs, labels, display
names and environment variables. These checks run on the parsed body, before and beside the
pydantic model, so that everything the model accepts is data and nothing else.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any

#: Deepest nesting of ``params`` (an object at the top counts as 1).
MAX_PARAMS_DEPTH = 32
#: Every integer of an order fits a signed 64-bit integer (what Go and Argo read exactly).
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
#: ``{{`` starts Argo template text; NUL cannot be passed to a process; lone surrogates cannot
#: be encoded as UTF-8 (JSON lets ``\ud800`` through).
_FORBIDDEN = re.compile("\\{\\{|\x00|[\ud800-\udfff]")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s]+")
MAX_URI_CHARS = 2048
#: Printable ASCII without leading or trailing space; and a URI made only of visible ASCII.
_ASCII_ID = re.compile(r"[!-~](?:[ -~]*[!-~])?")
_ASCII_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[!-~]+")


class DuplicateKeyError(ValueError):
    """A JSON object names the same key twice (the last one would silently win)."""


class HugeIntegerError(ValueError):
    """An integer literal too long to convert (thousands of digits): valid JSON, out of range."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(f"key {key!r:.80} appears twice in one object")
            seen.add(key)
    return obj


#: One decoder for every order: ``json.loads(text, object_pairs_hook=...)`` builds a decoder
#: and its C scanner on every call, which cost as much as the parse itself. The standard
#: library shares its own default decoder between threads the same way; the scanner's only
#: state is a cache of key strings, emptied after each document.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)
_BOM = "\ufeff"


def load_json(text: str) -> Any:
    """``json.loads`` without its leniency about duplicate keys.

    ``NaN``/``Infinity`` and overflowing floats parse to non-finite floats and integers to
    Python ints, which :func:`check_value` refuses out of range. Raises
    :class:`DuplicateKeyError`, :class:`HugeIntegerError` (more digits than Python converts),
    ``ValueError`` (not JSON) or ``RecursionError`` (nested deeper than Python's stack allows).
    """
    try:
        if text.startswith(_BOM):  # what json.loads says of a str with a byte order mark
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return _DECODER.decode(text)
    except DuplicateKeyError:
        raise
    except ValueError as exc:
        if "integer string conversion" in str(exc):
            raise HugeIntegerError("an integer has more digits than any 64-bit integer") from exc
        raise


def text_problem(value: str) -> str | None:
    """Why a string of an order is refused, or None."""
    match = _FORBIDDEN.search(value)
    if match is None:
        return None
    found = match.group()
    if found == "{{":
        return "contains '{{' (Argo template text)"
    if found == "\x00":
        return "contains a NUL character"
    return "contains an unpaired surrogate (not encodable as UTF-8)"


def check_value(value: Any, *, path: str, max_depth: int) -> None:
    """Refuse template text, non-finite or out-of-range numbers and too deep nesting.

    Iterative, so a hostile depth cannot exhaust the stack; raises ``ValueError`` naming the
    first offending place. A quick pass without path bookkeeping runs first: this is on the
    per-order hot path, and almost every order passes.
    """
    if _inert(value, max_depth):
        return
    stack: list[tuple[Any, str, int]] = [(value, path, 1)]
    while stack:
        item, where, depth = stack.pop()
        problem = _problem(item, depth=depth, max_depth=max_depth)
        if problem:
            raise ValueError(f"{_short(where)}: {problem}")
        if isinstance(item, dict):
            for key, child in item.items():
                key_problem = text_problem(key) if isinstance(key, str) else "key is not a string"
                if key_problem:
                    raise ValueError(f"{_short(where)}: key {key!r:.60} {key_problem}")
                stack.append((child, f"{where}.{key}", depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))


def _inert(value: Any, max_depth: int) -> bool:
    """:func:`check_value` without the messages: True when nothing is wrong."""
    if type(value) is not dict and type(value) is not list:
        return _problem(value, depth=1, max_depth=max_depth) is None
    search, finite = _FORBIDDEN.search, math.isfinite
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > max_depth:
            return False
        if type(container) is dict:
            for key in container:
                if type(key) is not str or search(key):
                    return False
            children = container.values()
        else:
            children = container
        for item in children:
            kind = type(item)
            if kind is str:
                if search(item):
                    return False
            elif kind is dict or kind is list:
                stack.append((item, depth + 1))
            elif kind is int:
                if not MIN_INT <= item <= MAX_INT:
                    return False
            elif kind is float:
                if not finite(item):
                    return False
            elif kind is not bool and item is not None:
                return False
    return True


def _short(where: str) -> str:
    return where if len(where) <= 120 else where[:117] + "..."


def _problem(item: Any, *, depth: int, max_depth: int) -> str | None:
    if isinstance(item, str):
        return text_problem(item)
    if isinstance(item, bool) or item is None:
        return None
    if isinstance(item, int):
        return None if MIN_INT <= item <= MAX_INT else "integer out of the signed 64-bit range"
    if isinstance(item, float):
        return None if math.isfinite(item) else "not a finite number (NaN or Infinity)"
    if isinstance(item, dict | list):
        return f"nested deeper than {max_depth} levels" if depth > max_depth else None
    return f"unsupported value of type {type(item).__name__}"


def order_id_problem(value: str) -> str | None:
    """``order_id``: one printable line; Unicode letters welcome, control characters not."""
    if (
        value.isascii()
        and _ASCII_ID.fullmatch(value)
        and "/" not in value
        and "\\" not in value
        and "{{" not in value
        and value not in {".", ".."}
    ):
        return None  # the common case, without the per-character walk below
    if not value.strip():
        return "must not be blank"
    if value != value.strip():
        return "must not start or end with whitespace"
    if value in {".", ".."}:
        return "must not be '.' or '..'"
    for char in value:
        if char in "/\\":
            return "must not contain '/' or '\\'"
        category = unicodedata.category(char)
        if category[0] == "C" or category in {"Zl", "Zp"} or (char.isspace() and char != " "):
            name = unicodedata.name(char, "a control character")
            return f"must not contain {name} (U+{ord(char):04X})"
    return text_problem(value)


def uri_problem(value: str) -> str | None:
    """``input.uri``: ``scheme:rest`` with no whitespace or control characters."""
    if len(value) > MAX_URI_CHARS:
        return f"longer than {MAX_URI_CHARS} characters"
    if value.isascii() and _ASCII_URI.fullmatch(value) and "{{" not in value:
        return None
    if not _URI.fullmatch(value):
        return "must be a URI (scheme:rest, no whitespace)"
    if any(unicodedata.category(char)[0] == "C" for char in value):
        return "must not contain control or format characters"
    return text_problem(value)


def uri_scheme(value: str) -> str:
    return value.split(":", 1)[0].lower()
