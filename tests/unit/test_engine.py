"""The engine: dedup of redeliveries, ack only after create, limits, drain, outcomes."""

from __future__ import annotations

import json

from dispatcher.adapters.cluster_memory import LocalClusterState, StaticMembers
from dispatcher.core.clock import FakeClock
from dispatcher.core.decisions import Ack, Create, DeadLetter, Repark
from dispatcher.core.engine import Engine
from dispatcher.core.flights import EngineConfig
from dispatcher.core.limits import LimitsChanged, limits_of
from dispatcher.core.order import Reason
from dispatcher.core.outcomes import Created, CreateFailed, Failure, PublishFailed
from tests.unit.helpers import settings

BIG = 10**12  # a large order: its own Workflow at once (linger 0)


def data(order_id: str, size: int = 1000) -> bytes:
    return json.dumps(
        {"order_id": order_id, "input": {"uri": "gs://b", "size_bytes": size}}
    ).encode()


def engine(
    *,
    members: StaticMembers | None = None,
    identity: str = "",
    max_in_flight: int = 8,
    cluster: LocalClusterState | None = None,
    **limits: object,
) -> tuple[Engine[str], FakeClock, LocalClusterState]:
    clock = FakeClock()
    cluster = cluster or LocalClusterState(identity)
    eng: Engine[str] = Engine(
        settings(**limits),
        cluster=cluster,
        members=members or StaticMembers((identity,)),
        clock=clock,
        config=EngineConfig(identity=identity, max_in_flight=max_in_flight),
    )
    return eng, clock, cluster


def creates(decisions: list[object]) -> list[Create]:
    return [d for d in decisions if isinstance(d, Create)]


def test_invalid_message_is_dead_lettered_with_reason() -> None:
    eng, _, _ = engine()
    [decision] = eng.receive("m1", b"{oops", {})
    assert isinstance(decision, DeadLetter) and decision.reason is Reason.INVALID_JSON
    assert decision.stage == "validate" and decision.receipts == ("m1",)


def test_unknown_step_is_dead_lettered() -> None:
    eng, _, _ = engine()
    body = json.dumps(
        {"order_id": "o", "input": {"uri": "gs://u/k", "size_bytes": 1}, "steps": {"bogus": True}}
    ).encode()
    [decision] = eng.receive("m1", body, {})
    assert isinstance(decision, DeadLetter) and decision.reason is Reason.UNKNOWN_STEP
    assert decision.stage == "classify"


def test_ack_only_after_create_and_redeliveries_join() -> None:
    eng, clock, _ = engine()
    assert eng.receive("m1", data("o1"), {}) == []
    assert eng.receive("m1-again", data("o1"), {}) == []
    clock.advance(5)
    [create] = eng.tick()
    assert isinstance(create, Create) and create.order_ids == ("o1",)
    assert create.body["metadata"]["name"] == create.name
    [ack] = eng.outcome(Created(create.name))
    assert isinstance(ack, Ack) and ack.receipts == ("m1", "m1-again")
    assert eng.receive("m1-late", data("o1"), {}) == [Ack(("m1-late",))]
    assert eng.idle()


def test_class_cap_holds_without_blocking_other_classes() -> None:
    eng, clock, _ = engine()
    cap = eng.limits.cap("large")
    made = []
    for i in range(cap + 3):
        made += eng.receive(f"L{i}", data(f"large-{i}", BIG), {})
    assert len(creates(made)) == cap
    small = eng.receive("s1", data("small-1"), {})
    clock.advance(5)
    small += eng.tick()
    assert [c.size_class for c in creates(small)] == ["small"]
    assert eng.held_orders()["large"] == 3


def test_rate_limit_holds_then_admits_on_time() -> None:
    eng, clock, _ = engine(workflows_per_second=1.0, burst=1)
    made = []
    for i in range(3):
        made += eng.receive(f"L{i}", data(f"large-{i}", BIG), {})
    assert len(made) == 1
    clock.advance(1.0)
    assert len(creates(eng.tick())) == 1


def test_an_ambiguous_create_is_retried_under_the_same_name_never_rebatched() -> None:
    """Defect 3: after timeouts the Workflow may exist; a new batch would get a new name."""
    eng, clock, _ = engine()
    [first] = eng.receive("a", data("big-a", BIG), {})
    assert isinstance(first, Create)
    assert eng.outcome(CreateFailed(first.name, Failure.UNKNOWN, "timed out")) == []
    assert eng.receive("a-redelivered", data("big-a", BIG), {}) == []  # joins, no new batch
    assert eng.in_flight() == 1
    assert creates(eng.tick()) == []  # not before the backoff
    clock.advance(60)
    [again] = creates(eng.tick())
    # The same name and body; a retry only renews the claim (it won it the first time).
    assert (again.name, again.body, again.attempt) == (first.name, first.body, 2)
    [ack] = eng.outcome(Created(first.name, existed=True))
    assert isinstance(ack, Ack) and ack.receipts == ("a", "a-redelivered")


def test_permanent_and_unexpected_failures_are_dead_lettered_with_a_reason() -> None:
    eng, _, _ = engine()
    [c1] = eng.receive("a", data("big-a", BIG), {})
    [c2] = eng.receive("b", data("big-b", BIG), {})
    assert isinstance(c1, Create) and isinstance(c2, Create)
    [dl] = eng.outcome(
        CreateFailed(c1.name, Failure.PERMANENT, "no template", reason=Reason.TEMPLATE_MISSING)
    )
    assert isinstance(dl, DeadLetter) and dl.reason is Reason.TEMPLATE_MISSING
    assert dl.order_id == "big-a" and dl.stage == "create"
    [bug] = eng.outcome(CreateFailed(c2.name, Failure.UNEXPECTED, "KeyError: 'x'"))
    assert isinstance(bug, DeadLetter) and bug.reason is Reason.INTERNAL_ERROR


def test_a_repark_publishes_one_copy_per_order_not_per_delivery() -> None:
    """Defect 4: a ticket that joined a Pub/Sub duplicate must not become two messages."""
    eng, clock, _ = engine(identity="r")
    for i in range(6):  # the large cap is 5: the sixth waits
        eng.receive(f"L{i}", data(f"large-{i}", BIG), {})
    eng.receive("L5-duplicate", data("large-5", BIG), {})
    clock.advance(eng.settings.pubsub.max_hold_seconds() + 10)
    [repark] = eng.tick()
    assert isinstance(repark, Repark) and repark.receipts == ("L5", "L5-duplicate")
    assert repark.order_id == "large-5" and eng.held_orders()["large"] == 0


def test_the_known_check_runs_again_just_before_each_create() -> None:
    """Defect 6: another replica created a Workflow with an order this one also holds."""
    eng, clock, cluster = engine(workflows_per_second=1.0, burst=1)
    eng.receive("x", data("big-x", BIG), {})  # takes the only token
    eng.receive("y", data("big-y", BIG), {})
    eng.receive("z", data("big-z", BIG), {})
    cluster.record_created("bd-large-elsewhere", "large", ("big-y",))  # another replica
    clock.advance(1.0)
    decisions = eng.tick()
    assert Ack(("y",)) in decisions
    assert [c.order_ids for c in creates(decisions)] == [("big-z",)]


def test_caps_count_every_live_workflow_and_share_out_orphans() -> None:
    """Defect 8: three replicas that all see 3 orphaned live Workflows under cap 5."""
    members = StaticMembers(("a", "b", "c"))
    admitted = {}
    for me in ("a", "b", "c"):
        cluster = LocalClusterState("old-pod")
        for i in range(3):
            cluster.record_created(f"old-{i}", "large", (f"old-{i}",))
        eng, _, _ = engine(members=members, identity=me, cluster=cluster)
        made = []
        for i in range(5):
            made += eng.receive(f"{me}{i}", data(f"{me}-large-{i}", BIG), {})
        admitted[me] = len(creates(made))
    assert sum(admitted.values()) == 2  # 3 live + 2 = the cap of 5
    assert admitted == {"a": 1, "b": 1, "c": 0}


def test_a_joining_replica_admits_nothing_until_settled() -> None:
    members = StaticMembers(("a", "b"), settled=False)
    eng, _, _ = engine(members=members, identity="b")
    assert eng.receive("L", data("large", BIG), {}) == []
    members.is_settled = True
    assert len(creates(eng.tick())) == 1


def test_creates_in_flight_are_bounded() -> None:
    """Defect 9: no more creates outstanding than the executor has workers."""
    eng, _, _ = engine(max_in_flight=2)
    made = []
    for i in range(5):
        made += eng.receive(f"L{i}", data(f"large-{i}", BIG), {})
    assert len(creates(made)) == 2 and eng.in_flight() == 2
    eng.outcome(Created(creates(made)[0].name))
    assert len(creates(eng.tick())) == 1


def test_drain_sends_what_limits_allow_and_reparks_the_rest_never_nacks() -> None:
    """Defect 10: draining spends no delivery attempt."""
    eng, _, _ = engine(workflows_per_second=0.001, burst=1)
    eng.receive("s1", data("s1"), {})
    eng.receive("m1", data("m1", 10**9), {})
    decisions = eng.drain()
    assert len(creates(decisions)) == 1
    [repark] = [d for d in decisions if isinstance(d, Repark)]
    assert len(repark.receipts) == 1
    [late] = eng.receive("late", data("x"), {})
    assert isinstance(late, Repark) and late.receipts == ("late",)
    assert not eng.settled_everything()  # the create is still in flight
    eng.outcome(Created(creates(decisions)[0].name))
    assert eng.settled_everything()


def test_live_limits_change_without_restart() -> None:
    eng, _, _ = engine()
    caps = dict(eng.limits.class_caps, large=0)
    new = limits_of(eng.settings)
    eng.limits_changed(LimitsChanged(type(new)(**{**_fields(new), "class_caps": caps})))
    assert eng.receive("L", data("large", BIG), {}) == []
    assert eng.held_orders()["large"] == 1


def _fields(limits: object) -> dict[str, object]:
    return {name: getattr(limits, name) for name in limits.__slots__}  # type: ignore[attr-defined]


def test_failed_publishes_are_retried_later_then_left_to_pubsub() -> None:
    eng, clock, _ = engine()
    [dl] = eng.receive("m1", b"{oops", {})
    assert isinstance(dl, DeadLetter)
    assert eng.outcome(PublishFailed(dl, "unavailable")) == []
    assert not eng.settled_everything()
    clock.advance(60)
    [again] = eng.tick()
    assert isinstance(again, DeadLetter) and again.attempt == 2 and again.receipts == ("m1",)
    assert eng.outcome(PublishFailed(dl, "too big", too_large=True)) == []


def test_an_ambiguous_create_seen_by_the_watch_is_settled_without_another_post() -> None:
    """Found by the model: after Argo's TTL deleted it, a second POST would run it twice."""
    eng, clock, cluster = engine()
    [first] = eng.receive("a", data("big-a", BIG), {})
    assert isinstance(first, Create)
    eng.outcome(CreateFailed(first.name, Failure.UNKNOWN, "timed out"))
    cluster.record_created(first.name, "large", first.order_ids)  # the watch saw it stored
    cluster.forget(first.name)  # ...and the TTL deleted it; the ledger still knows the order
    clock.advance(60)
    decisions = eng.tick()
    assert creates(decisions) == []
    assert decisions == [Ack(("a",), first.name, "large")]
