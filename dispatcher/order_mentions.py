"""Which orders a piece of Argo text names: the join between failed nodes and orders.

Argo reports failures by node display name and message only. A fanned-out item carries its
order as ``order_id:ID`` in the display name; other texts may quote an order in JSON or
mention it bare. Reading that reliably (``o-1`` is not ``o-10``, a size of 1234 bytes is not
order ``1234``) and fast (a thousand orders times thousands of failed nodes) is this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

#: Bare mentions of shorter ids (``"7"``) would match numbers anywhere in a message.
MIN_BARE_ID_CHARS = 4
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


class OrderIndex:
    """Finds which of a Workflow's order ids a text names, without trying each id in turn.

    A structured mention (``order_id:ID`` as Argo writes a map item, ``order_id=ID``, or JSON
    ``"order_id": "ID"``) is looked up in a set. A bare mention counts only where no structured
    one names an order of this Workflow, for ids of at least MIN_BARE_ID_CHARS characters with
    no id character directly around them. A thousand orders times thousands of failed nodes
    stays fast.
    """

    def __init__(self, order_ids: Sequence[str]) -> None:
        self._ids = frozenset(order_ids)
        self._longest = max((len(oid) for oid in order_ids), default=0)
        self._bare = [oid for oid in order_ids if len(oid) >= MIN_BARE_ID_CHARS]

    def named_in(self, text: str) -> set[str]:
        if not text:
            return set()
        if "order_id" in text:
            # A text that names orders explicitly (an Argo loop item) is read only that way:
            # a size of 1234 bytes in the same item is not order "1234".
            named = self._structured(text)
            if named:
                return named
        return {oid for oid in self._bare if oid in text and _occurs(text, oid)}

    def _structured(self, text: str) -> set[str]:
        found: set[str] = set()
        for match in _KEY.finditer(text):
            start = match.end()
            if match.group("json"):
                found.update(self._json_value(text, start))
                continue
            stop = min(len(text), start + self._longest)
            for end in range(start + 1, stop + 1):
                if end == len(text) or text[end] not in _ID_CHARS:
                    candidate = text[start:end]
                    if candidate in self._ids:
                        found.add(candidate)
        return found

    def _json_value(self, text: str, start: int) -> set[str]:
        end = start
        while True:
            end = text.find('"', end)
            if end < 0:
                return set()
            backslashes = len(text[start:end]) - len(text[start:end].rstrip("\\"))
            if backslashes % 2 == 0:
                break
            end += 1
        try:
            value = json.loads('"' + text[start:end] + '"')
        except ValueError:
            return set()
        return {value} if value in self._ids else set()


#: ``order_id:`` / ``order_id=`` (group kv) or JSON ``"order_id": "`` (group json), with no id
#: character before the key.
_KEY = re.compile(r'(?<![A-Za-z0-9_.\-])(?:(?P<kv>order_id[:=])|(?P<json>"order_id":\s?"))')


def mentions(text: str, order_id: str) -> bool:
    """Does ``text`` name ``order_id`` (the rules of :class:`OrderIndex`)?"""
    return order_id in OrderIndex([order_id]).named_in(text)


def _occurs(text: str, needle: str) -> bool:
    """``needle`` in ``text`` with no id character directly before or after it."""
    start = text.find(needle)
    while start >= 0:
        end = start + len(needle)
        clear_before = start == 0 or text[start - 1] not in _ID_CHARS
        clear_after = end == len(text) or text[end] not in _ID_CHARS
        if clear_before and clear_after:
            return True
        start = text.find(needle, start + 1)
    return False
