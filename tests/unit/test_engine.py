"""The engine: dedup of redeliveries, ack only after create, limits, drain."""

from __future__ import annotations

import json

from dispatcher.core.clock import FakeClock
from dispatcher.core.decisions import Ack, Create, DeadLetter, Release, Repark
from dispatcher.core.engine import Engine, LocalClusterState
from dispatcher.core.order import Reason
from tests.unit.helpers import settings


def data(order_id: str, size: int = 1000) -> bytes:
    return json.dumps(
        {"order_id": order_id, "input": {"uri": "gs://b", "size_bytes": size}}
    ).encode()


def engine(**limits: object) -> tuple[Engine[str], FakeClock, LocalClusterState]:
    clock = FakeClock()
    cluster = LocalClusterState()
    return Engine(settings(**limits), cluster=cluster, clock=clock), clock, cluster


def test_invalid_message_is_dead_lettered_with_reason() -> None:
    eng, _, _ = engine()
    [decision] = eng.receive("m1", b"{oops", {})
    assert isinstance(decision, DeadLetter) and decision.reason is Reason.INVALID_JSON
    assert decision.stage == "validate"


def test_unknown_step_is_dead_lettered() -> None:
    eng, _, _ = engine()
    body = json.dumps(
        {"order_id": "o", "input": {"uri": "gs://u/k", "size_bytes": 1}, "steps": {"bogus": True}}
    ).encode()
    [decision] = eng.receive("m1", body, {})
    assert isinstance(decision, DeadLetter) and decision.reason is Reason.UNKNOWN_STEP


def test_ack_only_after_create_and_redeliveries_join() -> None:
    eng, clock, _ = engine()
    assert eng.receive("m1", data("o1"), {}) == []
    assert eng.receive("m1-again", data("o1"), {}) == []
    clock.advance(5)
    [create] = eng.tick()
    assert isinstance(create, Create) and create.batch.order_ids == ("o1",)
    acks = eng.created(create.name)
    assert acks == [Ack("m1"), Ack("m1-again")]
    assert eng.receive("m1-late", data("o1"), {}) == [Ack("m1-late")]
    assert eng.idle()


def test_class_cap_holds_without_blocking_other_classes() -> None:
    eng, clock, _ = engine()
    cap = eng.settings.size_class("large").max_live_workflows
    creates = []
    for i in range(cap + 3):
        creates += eng.receive(f"L{i}", data(f"large-{i}", 10**12), {})
    assert len(creates) == cap  # linger 0: each large order is its own batch
    small = eng.receive("s1", data("small-1"), {})
    clock.advance(5)
    small += eng.tick()
    assert [c.batch.size_class for c in small if isinstance(c, Create)] == ["small"]
    assert eng.held_orders()["large"] == 3


def test_rate_limit_holds_then_releases_on_time() -> None:
    eng, clock, _ = engine(workflows_per_second=1.0, burst=1)
    made = []
    for i in range(3):
        made += eng.receive(f"L{i}", data(f"large-{i}", 10**12), {})
    assert len(made) == 1
    clock.advance(1.0)
    assert len(eng.tick()) == 1


def test_failed_create_releases_and_rejected_dead_letters() -> None:
    eng, _, _ = engine()
    [c1] = eng.receive("a", data("big-a", 10**12), {})
    [c2] = eng.receive("b", data("big-b", 10**12), {})
    assert isinstance(c1, Create) and isinstance(c2, Create)
    assert eng.failed_transiently(c1.name) == [Release("a")]
    [dl] = eng.rejected(c2.name, Reason.TEMPLATE_MISSING, "no template")
    assert isinstance(dl, DeadLetter) and dl.order_id == "big-b" and dl.stage == "create"
    # released orders come back as new deliveries and are dispatched again
    assert isinstance(eng.receive("a2", data("big-a", 10**12), {})[0], Create)


def test_drain_sends_partial_batches_and_releases_what_limits_hold() -> None:
    eng, _, _ = engine(workflows_per_second=0.001, burst=1)
    eng.receive("s1", data("s1"), {})
    eng.receive("m1", data("m1", 10**9), {})
    decisions = eng.drain()
    assert len([d for d in decisions if isinstance(d, Create)]) == 1
    assert len([d for d in decisions if isinstance(d, Release)]) == 1
    assert eng.receive("late", data("x"), {}) == [Release("late")]


def test_live_limits_change_without_restart() -> None:
    eng, _, _ = engine()
    new = eng.settings.model_copy(
        update={
            "classes": [
                c.model_copy(update={"max_live_workflows": 0}) if c.name == "large" else c
                for c in eng.settings.classes
            ]
        }
    )
    eng.apply_limits(new)
    assert eng.receive("L", data("large", 10**12), {}) == []
    assert eng.held_orders()["large"] == 1


def test_orders_held_past_the_lease_are_reparked_not_nacked() -> None:
    eng, clock, _ = engine()
    held = []
    for i in range(6):  # large cap is 5: the sixth waits
        held += eng.receive(f"L{i}", data(f"large-{i}", 10**12), {})
    assert len(held) == 5
    clock.advance(eng.settings.pubsub.max_hold_seconds() - 1)
    assert eng.tick() == []
    clock.advance(10)
    [repark] = eng.tick()
    assert isinstance(repark, Repark) and repark.receipt == "L5" and repark.size_class == "large"
    assert eng.held_orders()["large"] == 0


class TwoReplicaView(LocalClusterState):
    """Another replica exists; this one is rank 1 and owns what it creates."""

    def replicas(self) -> int:
        return 2

    def rank(self) -> int:
        return 1


def test_a_replica_keeps_to_its_share_of_a_class_cap() -> None:
    clock = FakeClock()
    eng = Engine(settings(), cluster=TwoReplicaView(), clock=clock)
    cap = eng.settings.size_class("large").max_live_workflows  # 5 -> shares 3 and 2
    creates = []
    for i in range(cap):
        creates += eng.receive(f"L{i}", data(f"large-{i}", 10**12), {})
    assert len(creates) == 2
