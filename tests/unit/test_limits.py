"""Token bucket and admission: limits are never exceeded, whatever the sequence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.adapters.cluster_memory import LocalClusterState, StaticMembers
from dispatcher.core.admission import Admission, HoldReason
from dispatcher.core.clock import FakeClock
from dispatcher.core.limits import Limits
from dispatcher.core.ratelimit import TokenBucket, share


def test_bucket_allows_burst_then_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_time() == pytest.approx(0.5)
    clock.advance(0.5)
    assert bucket.try_acquire() and not bucket.try_acquire()


def test_bucket_reconfigure_never_adds_tokens() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=10, clock=clock)
    bucket.reconfigure(rate=100.0, burst=2)
    assert [bucket.try_acquire() for _ in range(3)] == [True, True, False]


@given(
    rate=st.floats(0.1, 50),
    burst=st.integers(1, 20),
    steps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_bucket_never_exceeds_rate_times_time_plus_burst(
    rate: float, burst: int, steps: list[float]
) -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    granted = 0
    for step in steps:
        clock.advance(step)
        while bucket.try_acquire():
            granted += 1
    assert granted <= burst + rate * clock.now + 1e-6


def admission(
    cap: int, members: list[str], me: str, live: dict[str, int], *, max_objects: int = 10_000
) -> Admission:
    cluster = LocalClusterState()
    for replica, count in live.items():
        cluster.set_live("large", replica, count)
    limits = Limits(
        workflows_per_second=1000.0,
        burst=1000,
        max_workflow_objects=max_objects,
        class_caps={"large": cap},
    )
    return Admission(
        limits, cluster=cluster, members=StaticMembers(members), clock=FakeClock(), identity=me
    )


@given(
    cap=st.integers(0, 30),
    replicas=st.integers(1, 4),
    own=st.lists(st.integers(0, 10), min_size=4, max_size=4),
    orphans=st.integers(0, 10),
)
def test_replicas_that_see_the_same_cluster_never_admit_past_a_cap_together(
    cap: int, replicas: int, own: list[int], orphans: int
) -> None:
    members = [f"r{i}" for i in range(replicas)]
    live = {m: own[i] for i, m in enumerate(members)} | {"gone-pod": orphans}
    admitted = 0
    for me in members:
        gate = admission(cap, members, me, live)
        in_flight = 0
        while gate.check("large", in_flight, in_flight) is None:
            in_flight += 1
        admitted += in_flight
    total = sum(live.values())
    assert total + admitted <= max(cap, total)


def test_hold_reasons_and_rate_tokens() -> None:
    gate = admission(5, [""], "", {"": 5})
    assert gate.check("large", 0, 0) is HoldReason.CLASS_CAP
    gate = admission(5, [""], "", {}, max_objects=1)
    assert gate.check("large", 0, 1) is HoldReason.OBJECT_CAP
    assert gate.check("large", 0, 0) is None


def test_a_joining_replica_waits() -> None:
    gate = admission(5, ["a", "b"], "b", {})
    gate._members = StaticMembers(["a", "b"], settled=False)
    assert gate.check("large", 0, 0) is HoldReason.JOINING


def test_share_splits_across_replicas() -> None:
    assert share(10, 4) == 2.5 and share(10, 0) == 10


@given(cap=st.integers(0, 500), replicas=st.integers(1, 20))
def test_cap_shares_add_up_to_the_cap(cap: int, replicas: int) -> None:
    from dispatcher.core.ratelimit import cap_share

    shares = [cap_share(cap, replicas, rank) for rank in range(replicas)]
    assert sum(shares) == cap
    assert max(shares) - min(shares) <= 1
