"""How many bytes an order adds to a Workflow object as the API server stores it.

The ``orders`` argument is JSON text held in a JSON string: the API server (Go's encoding/json)
escapes it a second time. Quote-heavy params double in size, ``<``/``>``/``&`` grow sixfold. The
batcher bounds Workflow objects by these numbers, so they must be what etcd will hold, not the
length of our own encoding. Kept apart from the batcher so classification can refuse an order
that could never fit a Workflow before it is held.
"""

from __future__ import annotations

import re

# Room for the Workflow's metadata (managedFields included), labels and the non-order arguments.
OBJECT_OVERHEAD_BYTES = 2048
# Per order, besides its item and id: its message id in the message-ids annotation (Pub/Sub ids
# are decimal, well under 26 digits, and quoted: escaped quotes take 4 bytes) and separators.
PER_ORDER_OVERHEAD_BYTES = 32
#: Printable ASCII other than ``&``, ``<``, ``>`` and the backslash: in such text Go escapes
#: only ``"``. Nearly every order's text is of this kind, and one regular expression says so
#: faster than the counts below.
_PLAIN = re.compile(r"[ -%'-;=?-\[\]-~]*")


def stored_string_bytes(text: str) -> int:
    """Bytes ``text`` takes inside a JSON string as the API server stores it (quotes excluded).

    Go's encoding/json escapes ``"`` and ``\\`` with a backslash and ``<``, ``>``, ``&``, U+2028
    and U+2029 as ``\\u00XX``; control characters (none survive our own JSON encoding) take at
    most 6 bytes each.
    """
    if _PLAIN.fullmatch(text):
        return len(text) + text.count('"')
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    size += text.count('"') + text.count("\\")
    size += 5 * (text.count("<") + text.count(">") + text.count("&"))
    if not text.isascii():
        size += 3 * (text.count("\u2028") + text.count("\u2029"))
    if not text.isprintable():
        size += 5 * sum(1 for char in text if char < " ")
    return size


def order_object_bytes(item_json: str, order_id: str) -> int:
    """Bytes one order adds to the stored Workflow: its item in ``orders`` plus a comma, and
    its id in the order-ids annotation (a JSON list inside a JSON string: escaped twice)."""
    annotated = order_id.replace("\\", "\\\\").replace('"', '\\"')
    return (
        stored_string_bytes(item_json)
        + 1
        + stored_string_bytes(annotated)
        + 4  # the id's own quotes, escaped
        + 1
        + PER_ORDER_OVERHEAD_BYTES
    )
