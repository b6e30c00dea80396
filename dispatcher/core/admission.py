"""Whether a closed batch may become a Workflow now, or must wait (the backlog stays upstream).

Holding is never a failure: the orders stay leased and are offered again when the cluster
has room, so backpressure never dead-letters or nacks a healthy order.

Several replicas share every limit without talking to each other:

- the creation rate: each runs a token bucket with ``rate / replicas`` (burst likewise);
- a class cap, two checks, both needed:
  1. **global**: every live Workflow of the class counts, whatever replica label it carries
     (Workflows of replicas that are gone, e.g. after a rollout, included), plus this
     replica's creates in flight, must stay below the cap;
  2. **share**: this replica's own live Workflows + creates in flight + its share of the
     orphans (live Workflows whose replica is no longer a member) stay below its share of the
     cap, less what other members hold beyond theirs. Shares of ranks ``0..n-1`` add up to the
     cap, so creates in flight on different replicas (which the global check cannot see yet)
     never add up past it.
- a replica that has just joined admits nothing until ``settled()``: every peer has renewed
  since it joined and shrunk its own share, so the old and the new shares never overlap.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from dispatcher.core.clock import Clock
from dispatcher.core.limits import Limits
from dispatcher.core.ports import ClusterState, Members
from dispatcher.core.ratelimit import TokenBucket, cap_share, share


class HoldReason(StrEnum):
    CLASS_CAP = "class_cap"
    OBJECT_CAP = "object_cap"
    RATE = "rate"
    IN_FLIGHT = "in_flight"
    JOINING = "joining"
    PAUSED = "paused"


class Admission:
    """The limits of one replica, with its shares recomputed when membership changes."""

    def __init__(
        self,
        limits: Limits,
        *,
        cluster: ClusterState,
        members: Members,
        clock: Clock,
        identity: str,
    ) -> None:
        self._cluster = cluster
        self._members = members
        self._identity = identity
        self.limits = limits
        self._seen: tuple[str, ...] = tuple(members.members())
        replicas = len(self._seen)
        self._bucket = TokenBucket(
            rate=share(limits.workflows_per_second, replicas),
            burst=max(1, int(share(limits.burst, replicas))),
            clock=clock,
        )

    def reconfigure(self, limits: Limits) -> None:
        self.limits = limits
        self._reshare()

    def refund(self) -> None:
        """An admitted batch turned out to be in a Workflow already: its token goes back."""
        self._bucket.refund()

    def rate_wait(self) -> float:
        return self._bucket.wait_time()

    def check(
        self, size_class: str, class_in_flight: int, total_in_flight: int
    ) -> HoldReason | None:
        """None = admit one Workflow now (a rate token is taken); else why it must wait."""
        if self.limits.state(size_class) == "paused":
            return HoldReason.PAUSED  # before the rate: a paused class takes no token
        if not self._members.settled():
            return HoldReason.JOINING
        members = tuple(self._members.members())
        if members != self._seen:
            self._seen = members
            self._reshare()
        cap = self.limits.cap(size_class)
        by_replica = self._cluster.live_by_replica(size_class)
        if sum(by_replica.values()) + class_in_flight >= cap:
            return HoldReason.CLASS_CAP
        if len(members) > 1 and class_in_flight >= self._budget(cap, members, by_replica):
            return HoldReason.CLASS_CAP
        if self._cluster.objects_total() + total_in_flight >= self.limits.max_workflow_objects:
            return HoldReason.OBJECT_CAP
        if not self._bucket.try_acquire():
            return HoldReason.RATE
        return None

    def _budget(self, cap: int, members: tuple[str, ...], live: Mapping[str, int]) -> int:
        """How many Workflows of the class this replica may have in flight now.

        Each member's load is its own live Workflows plus its share of the orphans; its share
        of the cap minus that load is its room. A member over its share (shares shrank when a
        replica joined) has no room, and its excess is taken out of everyone else's room, so
        the members together stay within the cap.
        """
        n = len(members)
        orphans = sum(count for who, count in live.items() if who not in members)
        budget = 0
        for rank, member in enumerate(members):
            room = cap_share(cap, n, rank) - live.get(member, 0) - cap_share(orphans, n, rank)
            if member == self._identity or room < 0:
                budget += room
        return budget

    def _reshare(self) -> None:
        replicas = max(1, len(self._seen))
        self._bucket.reconfigure(
            rate=share(self.limits.workflows_per_second, replicas),
            burst=max(1, int(share(self.limits.burst, replicas))),
        )
