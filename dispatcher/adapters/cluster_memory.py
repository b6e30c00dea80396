"""In-memory twins of the cluster view and the replica membership.

``dispatcher run --sink DIR``, the benchmark and unit tests use them where the service uses
the watch-backed :class:`~dispatcher.adapters.cluster_view.WorkflowView` and the Lease-backed
:class:`~dispatcher.adapters.membership.Membership`. Same protocols
(:mod:`dispatcher.core.ports`), no threads, no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


class LocalClusterState:
    """Remembers what this process created; ``finish`` marks a Workflow done (not live)."""

    def __init__(self, identity: str = "") -> None:
        self._identity = identity
        self._live: dict[str, tuple[str, str]] = {}  # name -> (class, replica)
        self._done: set[str] = set()
        self._orders: set[str] = set()

    def contains(self, order_id: str) -> bool:
        return order_id in self._orders

    def live_by_replica(self, size_class: str) -> dict[str, int]:
        return dict(Counter(r for c, r in self._live.values() if c == size_class))

    def objects_total(self) -> int:
        return len(self._live) + len(self._done)

    def record_created(self, name: str, size_class: str, order_ids: tuple[str, ...]) -> None:
        if name not in self._done:
            self._live[name] = (size_class, self._identity)
        self._orders.update(order_ids)

    def set_live(self, size_class: str, replica: str, count: int) -> None:
        """Make ``count`` live Workflows of ``size_class`` labelled with ``replica`` (tests)."""
        for index in range(count):
            self._live[f"{replica}-{size_class}-{index}"] = (size_class, replica)

    def finish(self, name: str) -> None:
        if self._live.pop(name, None) is not None:
            self._done.add(name)

    def forget(self, name: str) -> None:
        self._live.pop(name, None)
        self._done.discard(name)


class StaticMembers:
    """A fixed set of replicas (one, by default), settled from the start."""

    def __init__(self, members: Sequence[str] = ("",), *, settled: bool = True) -> None:
        self.current = sorted(members)
        self.is_settled = settled

    def members(self) -> list[str]:
        return self.current

    def settled(self) -> bool:
        return self.is_settled
