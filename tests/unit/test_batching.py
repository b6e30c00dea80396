"""Batching never loses or duplicates an order and respects every bound."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from dispatcher.config import SizeClass
from dispatcher.core.batching import Batch, ClassBatcher, ticket_object_bytes
from dispatcher.core.classify import Ticket
from tests.unit.helpers import order, settings

CFG = settings()


def small(**changes: object) -> SizeClass:
    return CFG.classes[0].model_copy(update=changes)


def make(order_id: str, size: int, params_len: int = 0) -> Ticket[str]:
    o = order(order_id, size, params={"p": "x" * params_len})
    return Ticket(
        o, "small", f'{{"order_id":"{order_id}","p":"{"x" * params_len}"}}', 0.0, [order_id]
    )


def test_full_batch_closes_at_max_orders() -> None:
    batcher: ClassBatcher[str] = ClassBatcher(
        small(max_orders_per_workflow=3), max_object_bytes=65536
    )
    closed = [b for i in range(7) for b in batcher.add(make(f"o{i}", 10), 0.0)]
    assert [len(b.tickets) for b in closed] == [3, 3]
    assert len(batcher) == 1


def test_linger_closes_a_partial_batch_on_time() -> None:
    batcher: ClassBatcher[str] = ClassBatcher(small(max_linger_seconds=5), max_object_bytes=65536)
    batcher.add(make("a", 10), 100.0)
    batcher.add(make("b", 10), 103.0)
    assert batcher.due(104.9) == []
    assert batcher.deadline() == 105.0
    [batch] = batcher.due(105.0)
    assert batch.order_ids == ("a", "b") and batch.opened_at == 100.0


def test_zero_linger_sends_each_order_alone() -> None:
    batcher: ClassBatcher[str] = ClassBatcher(small(max_linger_seconds=0), max_object_bytes=65536)
    assert [b.order_ids for b in batcher.add(make("a", 10), 0.0)] == [("a",)]


def test_input_bytes_bound_starts_a_new_batch() -> None:
    batcher: ClassBatcher[str] = ClassBatcher(
        small(max_batch_input_bytes=100), max_object_bytes=65536
    )
    assert batcher.add(make("a", 60), 0.0) == []
    [closed] = batcher.add(make("b", 60), 0.0)
    assert closed.order_ids == ("a",)
    assert batcher.flush()[0].order_ids == ("b",)


def test_an_order_bigger_than_the_bound_travels_alone() -> None:
    batcher: ClassBatcher[str] = ClassBatcher(
        small(max_batch_input_bytes=100), max_object_bytes=65536
    )
    batcher.add(make("a", 10), 0.0)
    closed = batcher.add(make("huge", 500), 0.0)
    assert [b.order_ids for b in closed] == [("a",)]
    assert [b.order_ids for b in batcher.add(make("c", 10), 0.0)] == [("huge",)]


@hsettings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 3000)), max_size=120),
    max_orders=st.integers(1, 20),
    max_input=st.integers(1, 1500),
    max_object=st.integers(8192, 30000),
    flush_points=st.sets(st.integers(0, 120)),
)
def test_no_order_lost_or_duplicated_and_bounds_hold(
    sizes: list[tuple[int, int]],
    max_orders: int,
    max_input: int,
    max_object: int,
    flush_points: set[int],
) -> None:
    size_class = small(max_orders_per_workflow=max_orders, max_batch_input_bytes=max_input)
    batcher: ClassBatcher[str] = ClassBatcher(size_class, max_object_bytes=max_object)
    batches: list[Batch[str]] = []
    tickets = [make(f"o{i}", size, pad) for i, (size, pad) in enumerate(sizes)]
    for i, t in enumerate(tickets):
        batches.extend(batcher.add(t, float(i)))
        if i in flush_points:
            batches.extend(batcher.due(float(i) + size_class.max_linger_seconds))
    batches.extend(batcher.flush())
    seen = [oid for b in batches for oid in b.order_ids]
    assert sorted(seen) == sorted(t.order_id for t in tickets)
    assert len(seen) == len(set(seen))
    for b in batches:
        assert 1 <= len(b.tickets) <= max_orders
        if len(b.tickets) > 1:
            assert b.input_bytes <= max_input
            assert b.object_bytes <= max_object
    assert len(batcher) == 0


def test_object_bytes_estimate_covers_rendered_body() -> None:
    import json

    from dispatcher.core.render import render_workflow

    t = make("o-1", 10, 300)
    body = render_workflow(Batch("small", (t,), 0.0), settings=CFG, message_ids=["1" * 20])
    assert len(json.dumps(body).encode()) <= Batch("small", (t,), 0.0).object_bytes
    assert ticket_object_bytes(t) > len(t.item_json)
