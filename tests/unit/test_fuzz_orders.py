"""Fuzzing the intake: every input ends as exactly one valid order or one rejection with a reason.

Random bytes, mutated valid orders, deep nesting, huge and non-finite numbers, odd Unicode
(surrogates, controls, bidi overrides, line separators) and duplicate keys go through
``parse_order`` and, when accepted, through classification and rendering. For an accepted order
the Workflow's ``orders`` argument must be strict JSON (what Argo's Go parser takes) with no
Argo template text, encodable as UTF-8, and the Workflow as the API server stores it must weigh
no more than the batch's estimate. Budgets are fixed (``FUZZ``) so the suite stays well under
a minute in CI; failures found while building it are kept as explicit ``@example``s.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dispatcher.core.batching import Batch
from dispatcher.core.classify import Classifier, Ticket
from dispatcher.core.order import Order, Reason, Rejection, parse_order, salvage_order_id
from dispatcher.core.render import render_workflow
from tests.unit.helpers import settings as make_settings

CFG = make_settings()
CLASSIFIER = Classifier(CFG)
MAX = CFG.orders.max_order_bytes
FUZZ = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
VALID = {"order_id": "fz-1", "input": {"uri": "gs://in/fz", "size_bytes": 10}}


def _refuse_constant(name: str) -> Any:
    raise AssertionError(f"{name} in an accepted order's item")


def stored_json(body: Any) -> bytes:
    """The object as Go's encoding/json (the API server) writes it: HTML characters escaped."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8")


def settle(data: bytes) -> Order | Rejection | Ticket[int]:
    """The one end of ``data``; asserts the invariants on the way."""
    result = parse_order(data, {}, max_bytes=MAX)
    assert salvage_order_id(data) is None or isinstance(salvage_order_id(data), str)
    if isinstance(result, Rejection):
        assert isinstance(result.reason, Reason) and result.detail
        return result
    assert isinstance(result, Order)
    ticket = CLASSIFIER.ticket(result, now=0.0, receipt=0)
    if isinstance(ticket, Rejection):
        assert isinstance(ticket.reason, Reason) and ticket.detail
        return ticket
    item = ticket.item_json
    assert "{{" not in item and "\x00" not in item
    item.encode("utf-8")  # no lone surrogates
    assert json.loads(item, parse_constant=_refuse_constant)["order_id"] == result.order_id
    batch = Batch(ticket.size_class, (ticket,), 0.0)
    wire = stored_json(render_workflow(batch, settings=CFG, message_ids=["9" * 20]))
    assert len(wire) <= batch.object_bytes <= CFG.orders.max_workflow_object_bytes
    return ticket


def _text() -> st.SearchStrategy[str]:
    odd = st.sampled_from(["{{", "{{=", "}}", "\x00", "\n", "\u2028", "\u202e", "\ud800", "<&>"])
    plain = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
    return st.one_of(plain, odd, st.lists(st.one_of(plain, odd), max_size=4).map("".join))


NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
)
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, _text())
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text(), inner, max_size=4),
    max_leaves=24,
)


def encode(value: Any, duplicate: bool) -> str:
    """JSON text for ``value``; ``duplicate`` repeats the first key of every object."""
    if isinstance(value, dict):
        pairs = [f"{json.dumps(k)}:{encode(v, duplicate)}" for k, v in value.items()]
        if duplicate and pairs:
            pairs.append(pairs[0])
        return "{" + ",".join(pairs) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v, duplicate) for v in value) + "]"
    return json.dumps(value)  # NaN / Infinity as Python writes them


@FUZZ
@given(st.binary(max_size=400))
@example(b"[" * 100_000)
@example(b'{"order_id":"a","input":{"uri":"gs://b/k","size_bytes":1},"params":{"x":NaN}}')
def test_random_bytes_end_as_order_or_rejection(data: bytes) -> None:
    settle(data)


@FUZZ
@given(st.data())
def test_mutated_valid_orders_end_as_order_or_rejection(data: st.DataObject) -> None:
    body = json.dumps(VALID).encode()
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(body)))
        kind = data.draw(st.sampled_from(["insert", "delete", "flip"]))
        chunk = data.draw(st.binary(min_size=1, max_size=3))
        if kind == "insert":
            body = body[:where] + chunk + body[where:]
        elif kind == "delete":
            body = body[:where] + body[where + len(chunk) :]
        elif where < len(body):
            body = body[:where] + bytes([body[where] ^ chunk[0]]) + body[where + 1 :]
    settle(body)


@FUZZ
@given(
    order_id=_text(),
    uri=st.one_of(_text(), _text().map(lambda t: "gs://in/" + t)),
    params=st.dictionaries(_text(), VALUES, max_size=5),
    steps=st.dictionaries(_text(), st.booleans(), max_size=2),
    duplicate=st.booleans(),
)
@example(order_id="a", uri="gs://in/k", params={"x": "\ud800"}, steps={}, duplicate=False)
@example(order_id="a", uri="gs://in/k", params={"x": 10**4000}, steps={}, duplicate=False)
@example(order_id="a", uri="gs://in/k", params={"x": '"' * 9000}, steps={}, duplicate=False)
@example(order_id="\u2028", uri="gs://in/k", params={}, steps={}, duplicate=False)
def test_generated_orders_end_as_order_or_rejection(
    order_id: str, uri: str, params: dict[str, Any], steps: dict[str, bool], duplicate: bool
) -> None:
    body = {"order_id": order_id, "input": {"uri": uri, "size_bytes": 1}, "params": params}
    if steps:
        body["steps"] = steps
    text = encode(body, duplicate)
    ended = settle(text.encode("utf-8", "surrogatepass"))
    if duplicate:
        assert isinstance(ended, Rejection) and ended.reason is Reason.DUPLICATE_KEY


@FUZZ
@given(depth=st.integers(1, 3000), kind=st.sampled_from(["[", '{"a":']))
def test_any_nesting_depth_ends_as_order_or_rejection(depth: int, kind: str) -> None:
    close = "]" if kind == "[" else "}"
    inner = kind * depth + "1" + close * depth
    text = json.dumps(VALID)[:-1] + ',"params":{"p":' + inner + "}}"
    ended = settle(text.encode())
    assert isinstance(ended, Ticket) == (depth <= 31), ended
