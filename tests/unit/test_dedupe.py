"""The ledger's arithmetic: digests, blobs, buckets, names and the in-memory index."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dispatcher.core import dedupe

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
ids = st.text(min_size=1, max_size=128)


def test_digest_is_fixed_width_and_stable() -> None:
    assert len(dedupe.digest("order-1")) == dedupe.DIGEST_BYTES
    assert dedupe.digest("order-1") == dedupe.digest("order-1")
    assert dedupe.digest("order-1") != dedupe.digest("order-2")


@given(st.lists(ids, unique=True, max_size=200))
def test_distinct_ids_get_distinct_digests_and_survive_packing(order_ids: list[str]) -> None:
    digests = [dedupe.digest(order_id) for order_id in order_ids]
    assert len(set(digests)) == len(order_ids)
    assert list(dedupe.unpack(dedupe.pack(digests))) == digests


def test_a_torn_tail_is_ignored() -> None:
    blob = dedupe.pack([dedupe.digest("a"), dedupe.digest("b")])
    assert list(dedupe.unpack(blob + b"xyz")) == [dedupe.digest("a"), dedupe.digest("b")]


@given(
    recorded=st.floats(min_value=0, max_value=4e9),
    window=st.floats(min_value=60, max_value=30 * 86400),
    later=st.floats(min_value=0, max_value=60 * 86400),
)
def test_a_bucket_outlives_the_window_of_everything_in_it(
    recorded: float, window: float, later: float
) -> None:
    start = dedupe.bucket_start(recorded)
    assert start <= recorded < start + dedupe.BUCKET_SECONDS
    now = recorded + later
    expired = dedupe.bucket_expired(start, now=now, window_seconds=window)
    if later < window:
        assert not expired  # no false negative inside the window
    if now >= start + dedupe.BUCKET_SECONDS + window:
        assert expired  # and at most one bucket of slack after it


@given(environment=st.text(max_size=80), identity=st.text(max_size=300), chunk=st.integers(0, 9999))
def test_object_names_are_valid_and_distinct_per_writer(
    environment: str, identity: str, chunk: int
) -> None:
    name = dedupe.object_name(
        environment=environment, identity=identity, bucket=1_764_000_000, chunk=chunk
    )
    assert len(name) <= 253
    assert DNS_SUBDOMAIN.match(name), name
    other = dedupe.object_name(
        environment=environment, identity=identity + "x", bucket=1_764_000_000, chunk=chunk
    )
    assert other != name


class IndexModel(RuleBasedStateMachine):
    """The index equals the union of the objects' digests whatever order events arrive in."""

    def __init__(self) -> None:
        super().__init__()
        self.index = dedupe.DigestIndex()
        self.objects: dict[str, list[bytes]] = {}

    @rule(name=st.sampled_from(["a", "b", "c"]), new=st.lists(ids, max_size=5))
    def append(self, name: str, new: list[str]) -> None:
        # Two objects may hold the same id (two replicas recorded one order).
        self.objects.setdefault(name, []).extend(dedupe.digest(value) for value in new)
        self.index.put(name, bucket=0, blob=dedupe.pack(self.objects[name]))

    @rule(name=st.sampled_from(["a", "b", "c"]), data=st.data())
    def stale_event(self, name: str, data: st.DataObject) -> None:
        known = self.objects.get(name, [])
        cut = data.draw(st.integers(0, len(known)))
        if name in self.objects:
            self.index.put(name, bucket=0, blob=dedupe.pack(known[:cut]))

    @rule(name=st.sampled_from(["a", "b", "c"]))
    def delete(self, name: str) -> None:
        self.objects.pop(name, None)
        self.index.drop(name)

    @rule()
    def relist(self) -> None:
        for name, digests in self.objects.items():
            self.index.put(name, bucket=0, blob=dedupe.pack(digests))

    @invariant()
    def matches_the_objects(self) -> None:
        expected = {value for digests in self.objects.values() for value in digests}
        assert len(self.index) == len(expected)
        assert all(value in self.index for value in expected)
        assert self.index.names() == set(self.objects)


TestIndexModel = IndexModel.TestCase
