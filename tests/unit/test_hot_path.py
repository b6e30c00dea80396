"""The per-order shortcuts give exactly what the plain versions they replaced gave.

The intake runs once per order on the engine thread, so parts of it are written for speed (one
shared JSON decoder, hand-built items, fast paths for plain ASCII). Each test here keeps the
plain version as an oracle and compares on generated inputs: a shortcut that drifts from it —
another error text, one byte less in a size — fails here, not in a Workflow.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dispatcher.core.classify import Classifier, Ticket, work_key
from dispatcher.core.order import Order, Reason, Rejection, parse_order
from dispatcher.core.order_data import _unique_keys, load_json
from dispatcher.core.wire_size import stored_string_bytes
from tests.unit.helpers import settings as make_settings

CHECKS = settings(max_examples=300, deadline=None, derandomize=True)
JSONISH = st.one_of(
    st.text(max_size=40),
    st.from_regex(r'\s*\{"a":\s*1,\s*"b":\s*\[1,2\]\s*\}\s*', fullmatch=True),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
        max_leaves=8,
    ).map(json.dumps),
)


def outcome(fn: Any, text: str) -> tuple[str, Any]:
    try:
        return "value", fn(text)
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


def plain_load(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_unique_keys)


@CHECKS
@given(JSONISH)
@example("\ufeff{}")
@example('{"a": 1, "a": 2}')
@example('{"a": 1} x')
@example("")
@example("[" * 50 + "]" * 50)
def test_load_json_answers_as_json_loads_with_the_hook(text: str) -> None:
    mine, plain = outcome(load_json, text), outcome(plain_load, text)
    if mine[0] == "value" and plain[0] == "value":
        # NaN != NaN: compare the texts the values make
        assert json.dumps(mine[1]) == json.dumps(plain[1])
    elif plain[0] == "ValueError" and "integer string conversion" in plain[1]:
        assert mine[0] == "HugeIntegerError"
    else:
        assert mine == plain


def plain_stored_string_bytes(text: str) -> int:
    """The counting version, kept as the oracle of the fast path."""
    size = len(text.encode("utf-8", "surrogatepass"))
    size += text.count('"') + text.count("\\")
    size += 5 * (text.count("<") + text.count(">") + text.count("&"))
    size += 3 * (text.count("\u2028") + text.count("\u2029"))
    return size + 5 * sum(1 for char in text if char < " ")


TEXTS = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=60),
    st.text(max_size=30),
    st.sampled_from(['"', "\\", "<", ">", "&", "\x7f", "\x1f", "\u2028", " ", "~", "[", "]"]),
)


@CHECKS
@given(TEXTS)
@example('a"b')
@example("a\x7fb")
@example("a]b[c")
def test_stored_string_bytes_matches_the_counting_version(text: str) -> None:
    assert stored_string_bytes(text) == plain_stored_string_bytes(text)


CFG = make_settings()
CLASSIFIER = Classifier(CFG)


def plain_item_json(order: Order) -> str:
    """The item as ``json.dumps`` of a fresh dict writes it: the oracle of the hand-built one."""
    item: dict[str, Any] = {
        "input_uri": order.input.uri,
        "order_id": order.order_id,
        "params": order.params,
        "priority": order.priority,
        "size_bytes": order.input.size_bytes,
        "work_key": work_key(order.order_id),
    }
    for step, default in CFG.optional_steps.items():
        item[f"step_{step}"] = order.steps.get(step, default)
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


ORDERS = st.fixed_dictionaries(
    {
        "order_id": st.from_regex(r"[A-Za-z0-9é<&\"-]{1,20}", fullmatch=True),
        "input": st.fixed_dictionaries(
            {
                "uri": st.from_regex(r"gs://b/[a-z<&\"]{1,10}", fullmatch=True),
                "size_bytes": st.integers(0, 10**6),
            }
        ),
    },
    optional={
        "steps": st.dictionaries(st.sampled_from([*CFG.optional_steps, "other"]), st.booleans()),
        "priority": st.integers(-5, 5),
        "params": st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=4)),
    },
)


@CHECKS
@given(ORDERS)
def test_tickets_carry_the_plain_item_and_refuse_unknown_steps(body: dict[str, Any]) -> None:
    order = parse_order(json.dumps(body).encode(), {}, max_bytes=CFG.orders.max_order_bytes)
    if isinstance(order, Rejection):
        return  # the contract refused it (e.g. '{{' in a key): not this test's business
    ticket = CLASSIFIER.ticket(order, now=0.0, receipt=0)
    if "other" in body.get("steps", {}):
        assert isinstance(ticket, Rejection) and ticket.reason is Reason.UNKNOWN_STEP
        assert "['other']" in ticket.detail
        return
    assert isinstance(ticket, Ticket)
    assert ticket.item_json == plain_item_json(order)


LOOSE_BODIES = st.dictionaries(
    st.sampled_from(["order_id", "input", "steps", "priority", "params", "extra"]),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=6),
        lambda inner: st.dictionaries(st.sampled_from(["uri", "size_bytes", "x"]), inner),
        max_leaves=4,
    ),
)


ODD_VALUES = st.one_of(
    st.booleans(), st.none(), st.floats(allow_nan=False), st.sampled_from(["1", "gs://x", ""])
)


def with_one_odd_value(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``body`` with the field at ``path`` (``input.size_bytes``) replaced by ``value``."""
    changed = json.loads(json.dumps(body))
    *parents, last = path.split(".")
    target = changed
    for part in parents:
        target = target[part]
    target[last] = value
    return changed


PATHS = ["order_id", "input", "input.uri", "input.size_bytes", "priority", "steps", "params"]
NEAR_VALID = st.builds(with_one_odd_value, ORDERS, st.sampled_from(PATHS), ODD_VALUES)


@CHECKS
@given(ORDERS | LOOSE_BODIES | NEAR_VALID)
def test_parse_order_validates_as_model_validate(body: dict[str, Any]) -> None:
    result = parse_order(json.dumps(body).encode(), {}, max_bytes=CFG.orders.max_order_bytes)
    try:
        expected: Order | None = Order.model_validate(body)
    except ValidationError:
        expected = None
    if expected is None:
        assert isinstance(result, Rejection)
    else:
        assert result == expected
