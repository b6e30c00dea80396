"""The order contract v1: every rejection has a stable reason and a detail naming the field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.core.order import Order, Reason, Rejection, parse_order

MAX = 16_384


def body(**overrides: object) -> bytes:
    order: dict[str, object] = {"order_id": "ord-1", "input": {"uri": "gs://b/k", "size_bytes": 10}}
    order.update(overrides)
    return json.dumps(order).encode()


def reject(data: bytes, attributes: dict[str, str] | None = None) -> Rejection:
    result = parse_order(data, attributes or {}, max_bytes=MAX)
    assert isinstance(result, Rejection), result
    return result


def test_minimal_order_is_accepted_with_defaults() -> None:
    order = parse_order(body(), {}, max_bytes=MAX)
    assert isinstance(order, Order)
    assert (order.order_id, order.input.size_bytes, order.schema_version) == ("ord-1", 10, 1)
    assert order.steps == {} and order.params == {} and order.priority == 0


def test_full_order_is_accepted() -> None:
    data = body(steps={"enrich": True}, priority=5, params={"a": [1, 2]}, schema_version=1)
    order = parse_order(data, {"order_id": "ord-1"}, max_bytes=MAX)
    assert isinstance(order, Order)
    assert order.steps == {"enrich": True} and order.params == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("data", "reason", "needle"),
    [
        (b"{nope", Reason.INVALID_JSON, "not JSON"),
        (b"\xff\xfe\x00", Reason.INVALID_ENCODING, "UTF-8"),
        (b"[1, 2]", Reason.NOT_AN_OBJECT, "object"),
        (b"null", Reason.NOT_AN_OBJECT, "object"),
        (b'"text"', Reason.NOT_AN_OBJECT, "object"),
        (
            json.dumps({"input": {"uri": "gs://u/k", "size_bytes": 1}}).encode(),
            Reason.SCHEMA,
            "order_id",
        ),
        (body(order_id=""), Reason.SCHEMA, "order_id"),
        (body(order_id="x" * 129), Reason.SCHEMA, "order_id"),
        (body(order_id=17), Reason.SCHEMA, "order_id"),
        (body(input={"uri": "", "size_bytes": 1}), Reason.SCHEMA, "input.uri"),
        (body(input={"size_bytes": 1}), Reason.SCHEMA, "input.uri"),
        (body(input={"uri": "gs://u/k", "size_bytes": -1}), Reason.SCHEMA, "input.size_bytes"),
        (body(input={"uri": "gs://u/k", "size_bytes": 2**63}), Reason.SCHEMA, "input.size_bytes"),
        (body(input={"uri": "gs://u/k", "size_bytes": True}), Reason.SCHEMA, "input.size_bytes"),
        (body(input={"uri": "gs://u/k", "size_bytes": 1.0}), Reason.SCHEMA, "input.size_bytes"),
        (body(input={"uri": "gs://u/k", "size_bytes": "1"}), Reason.SCHEMA, "input.size_bytes"),
        (body(input="gs://b/k"), Reason.SCHEMA, "input"),
        (body(steps={"enrich": "yes"}), Reason.SCHEMA, "steps.enrich"),
        (body(priority=True), Reason.SCHEMA, "priority"),
        (body(params=[1]), Reason.SCHEMA, "params"),
        (body(unknown_field=1), Reason.SCHEMA, "unknown_field"),
        (body(schema_version=2), Reason.UNSUPPORTED_SCHEMA_VERSION, "schema_version"),
        (body(schema_version="1"), Reason.UNSUPPORTED_SCHEMA_VERSION, "schema_version"),
    ],
)
def test_rejections_have_stable_reason_and_detail(data: bytes, reason: Reason, needle: str) -> None:
    rejection = reject(data)
    assert rejection.reason is reason
    assert needle in rejection.detail


def test_order_id_kept_on_schema_rejection_when_readable() -> None:
    assert reject(body(input={"uri": "", "size_bytes": 1})).order_id == "ord-1"
    assert reject(b"{nope").order_id is None


def test_attribute_must_match_body() -> None:
    rejection = reject(body(), {"order_id": "other"})
    assert rejection.reason is Reason.ATTRIBUTE_MISMATCH
    assert "other" in rejection.detail and "ord-1" in rejection.detail


def test_body_too_large_is_rejected_before_parsing() -> None:
    data = body(params={"blob": "x" * MAX})
    rejection = reject(data)
    assert rejection.reason is Reason.BODY_TOO_LARGE
    assert str(MAX) in rejection.detail


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    result = parse_order(data, {}, max_bytes=MAX)
    assert isinstance(result, Order | Rejection)


@given(st.integers())
def test_size_bytes_accepted_exactly_in_range(size: int) -> None:
    result = parse_order(body(input={"uri": "gs://u/k", "size_bytes": size}), {}, max_bytes=MAX)
    assert isinstance(result, Order) == (0 <= size < 2**63)


# --- issue 9: order data is data (each case was accepted or misreported before) ---------------


@pytest.mark.parametrize(
    ("data", "reason", "needle"),
    [
        # point 1: non-finite numbers would make Argo's strict JSON refuse the whole batch
        (
            b'{"order_id":"a","input":{"uri":"gs://b/k","size_bytes":1},"params":{"x":NaN}}',
            Reason.SCHEMA,
            "finite",
        ),
        (
            b'{"order_id":"a","input":{"uri":"gs://b/k","size_bytes":1},"params":{"x":-Infinity}}',
            Reason.SCHEMA,
            "finite",
        ),
        (body(params={"x": [1, 2]}).replace(b"2]", b"1e999]"), Reason.SCHEMA, "finite"),
        # point 2: Argo template text anywhere in an order
        (body(params={"x": "{{workflow.parameters.orders}}"}), Reason.SCHEMA, "'{{'"),
        (body(params={"x": {"y": ["a{{=sprig.fail('x')}}"]}}), Reason.SCHEMA, "params.x.y[0]"),
        (body(params={"{{inputs.parameters.order}}": 1}), Reason.SCHEMA, "key"),
        (body(order_id="a{{workflow.name}}"), Reason.SCHEMA, "order_id"),
        (body(input={"uri": "gs://b/{{workflow.name}}", "size_bytes": 1}), Reason.SCHEMA, "uri"),
        (body(steps={"{{x}}": True}), Reason.SCHEMA, "steps"),
        # point 3: order_id and uri shapes, duplicate keys, right reason for valid JSON
        (body(order_id="a\x00b"), Reason.SCHEMA, "order_id"),
        (body(order_id="a\nb"), Reason.SCHEMA, "order_id"),
        (body(order_id="a\u2028b"), Reason.SCHEMA, "order_id"),
        (body(order_id="a\u202eb"), Reason.SCHEMA, "order_id"),
        (body(order_id="   "), Reason.SCHEMA, "blank"),
        (body(order_id=" a"), Reason.SCHEMA, "whitespace"),
        (body(order_id="../victim"), Reason.SCHEMA, "'/'"),
        (body(order_id=".."), Reason.SCHEMA, "'..'"),
        (body(input={"uri": "   ", "size_bytes": 1}), Reason.SCHEMA, "input.uri"),
        (body(input={"uri": "no-scheme", "size_bytes": 1}), Reason.SCHEMA, "input.uri"),
        (body(input={"uri": "gs://b/a b", "size_bytes": 1}), Reason.SCHEMA, "input.uri"),
        (
            b'{"order_id":"a","order_id":"b","input":{"uri":"gs://b/k","size_bytes":1}}',
            Reason.DUPLICATE_KEY,
            "order_id",
        ),
        (
            b'{"order_id":"a","input":{"uri":"gs://b/k","size_bytes":1},"params":{"k":1,"k":2}}',
            Reason.DUPLICATE_KEY,
            "'k'",
        ),
        (body(params={"x": "\ud800"}), Reason.SCHEMA, "surrogate"),
        (body(params={"x": "a\x00"}), Reason.SCHEMA, "NUL"),
        (body(params={"x": json.loads("[" * 150 + "]" * 150)}), Reason.SCHEMA, "nested deeper"),
        (
            b'{"order_id":"a","input":{"uri":"gs://b/k","size_bytes":1},"params":{"x":'
            + b"[" * 250
            + b"]" * 250
            + b"}}",
            Reason.SCHEMA,
            "nested",
        ),
        (
            b'{"order_id":"a","input":{"uri":"gs://b/k","size_bytes":1},"params":'
            + b'{"a":' * 5000
            + b"1"
            + b"}" * 5000
            + b"}",
            Reason.SCHEMA,
            "nested",
        ),
        (body(params={"n": 1}).replace(b"1}", b"9" * 5000 + b"}"), Reason.SCHEMA, "out of range"),
        (body(params={"n": 2**64}), Reason.SCHEMA, "64-bit"),
        (body().replace(b"10}", b"9" * 5000 + b"}"), Reason.SCHEMA, "out of range"),
        (body(schema_version=True), Reason.UNSUPPORTED_SCHEMA_VERSION, "schema_version"),
        (body(schema_version=1.0), Reason.UNSUPPORTED_SCHEMA_VERSION, "schema_version"),
    ],
)
def test_hostile_orders_are_refused_with_the_right_reason(
    data: bytes, reason: Reason, needle: str
) -> None:
    rejection = parse_order(data, {}, max_bytes=1 << 20)
    assert isinstance(rejection, Rejection), rejection
    assert rejection.reason is reason, rejection
    assert needle in rejection.detail, rejection.detail


@pytest.mark.parametrize(
    "order_id", ["ord-1", "Bestellung-Müller", "заказ 17", "注文-ä", "a.b_c:d@e", "x" * 128]
)
def test_printable_unicode_order_ids_are_accepted(order_id: str) -> None:
    order = parse_order(body(order_id=order_id), {}, max_bytes=MAX)
    assert isinstance(order, Order) and order.order_id == order_id


def test_braces_that_argo_does_not_read_are_plain_data() -> None:
    params = {"a": "{x}", "b": "} }", "c": "{ {", "d": "$(HOME)", "e": "}}", "f": ["{", "{"]}
    order = parse_order(body(params=params), {}, max_bytes=MAX)
    assert isinstance(order, Order) and order.params == params


def test_a_duplicate_key_that_reads_like_another_error_is_still_a_duplicate() -> None:
    data = b'{"order_id":"a","input":{"uri":"gs://b/k","size_bytes":1},"params":' + (
        b'{"integer string conversion":1,"integer string conversion":2}}'
    )
    assert reject(data).reason is Reason.DUPLICATE_KEY
