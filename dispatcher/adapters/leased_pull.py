"""Synchronous pull that holds every message it has seen until it is settled on purpose.

Inspecting or selectively replaying dead letters must not lose one or show one twice. Giving a
message back at once (``modify_ack_deadline`` 0) would make the next pull return it again, so
this keeps a lease on everything pulled (renewed while the command runs), hands out each
message id once, acks only what the caller says, and gives the rest back when it closes. If the
command dies, the leases simply run out and Pub/Sub redelivers: nothing is lost either way.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from dispatcher.core.replay import DeadLetterRecord
from dispatcher.errors import DispatchError, TransientError

LEASE_SECONDS = 60
PULL_TIMEOUT_SECONDS = 5.0
MAX_IDS_PER_REQUEST = 1000


@dataclass(slots=True)
class _Lease:
    ack_id: str
    renewed_at: float


class LeasedPull:
    """Pull, lease, ack and give back on one subscription (a context manager)."""

    def __init__(
        self,
        subscriber: pubsub_v1.SubscriberClient,
        subscription: str,
        *,
        lease_seconds: int = LEASE_SECONDS,
        pull_timeout: float = PULL_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._subscriber = subscriber
        self._subscription = subscription
        self._lease_seconds = lease_seconds
        self._pull_timeout = pull_timeout
        self._clock = clock
        self._held: dict[str, _Lease] = {}
        self._acked: set[str] = set()
        self._checked_at = float("-inf")

    def __enter__(self) -> LeasedPull:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.give_back_all()

    @property
    def held(self) -> int:
        return len(self._held)

    def pull(self, max_messages: int, *, timeout: float | None = None) -> list[DeadLetterRecord]:
        """Up to ``max_messages`` messages not handed out before; [] when none came.

        ``timeout`` (default: the one given at construction) bounds how long an empty
        subscription is waited on."""
        self.renew()
        wait = self._pull_timeout if timeout is None else max(0.1, timeout)
        try:
            response = self._subscriber.pull(
                subscription=self._subscription,
                max_messages=max_messages,
                timeout=wait,
            )
        except (gexc.DeadlineExceeded, gexc.Cancelled):
            # Nothing came before our own deadline; a server may report the cut-off stream as
            # CANCELLED (pstest: "Stream removed") rather than DEADLINE_EXCEEDED.
            return []
        except gexc.GoogleAPICallError as exc:
            raise _translate(exc, self._subscription) from exc
        now = self._clock()
        fresh: list[DeadLetterRecord] = []
        leased: list[str] = []
        again: list[str] = []
        for received in response.received_messages:
            message = received.message
            message_id = str(message.message_id)
            if message_id in self._acked:
                again.append(received.ack_id)  # an ack that did not stick; settle it again
                continue
            if message_id not in self._held:
                fresh.append(_record(message))
            self._held[message_id] = _Lease(received.ack_id, now)
            leased.append(received.ack_id)
        self._modify(leased, self._lease_seconds)
        self._acknowledge(again)
        return fresh

    def ack(self, message_ids: Iterable[str]) -> None:
        """Settle these messages for good (they were republished or are not wanted)."""
        ack_ids: list[str] = []
        for message_id in message_ids:
            lease = self._held.pop(message_id, None)
            if lease is not None:
                ack_ids.append(lease.ack_id)
                self._acked.add(message_id)
        self._acknowledge(ack_ids)

    def give_back_all(self) -> None:
        """Make every held message available to the next pull at once (best effort)."""
        ack_ids = [lease.ack_id for lease in self._held.values()]
        self._held.clear()
        # On failure the leases run out by themselves within LEASE_SECONDS.
        with contextlib.suppress(DispatchError):
            self._modify(ack_ids, 0)

    def renew(self) -> None:
        """Extend the leases that are a third through; call it at least every LEASE/3 seconds
        while holding messages (each pull does). Cheap when nothing is due."""
        now = self._clock()
        if now - self._checked_at < self._lease_seconds / 6:
            return
        self._checked_at = now
        due = [
            lease
            for lease in self._held.values()
            if now - lease.renewed_at > self._lease_seconds / 3
        ]
        self._modify([lease.ack_id for lease in due], self._lease_seconds)
        for lease in due:
            lease.renewed_at = now

    def _modify(self, ack_ids: list[str], seconds: int) -> None:
        for chunk in _chunks(ack_ids):
            try:
                self._subscriber.modify_ack_deadline(
                    subscription=self._subscription, ack_ids=chunk, ack_deadline_seconds=seconds
                )
            except gexc.GoogleAPICallError as exc:
                raise _translate(exc, self._subscription) from exc

    def _acknowledge(self, ack_ids: list[str]) -> None:
        for chunk in _chunks(ack_ids):
            try:
                self._subscriber.acknowledge(subscription=self._subscription, ack_ids=chunk)
            except gexc.GoogleAPICallError as exc:
                raise _translate(exc, self._subscription) from exc


def _record(message: Any) -> DeadLetterRecord:
    published = message.publish_time
    return DeadLetterRecord(
        message_id=str(message.message_id),
        data=bytes(message.data),
        attributes={str(k): str(v) for k, v in dict(message.attributes).items()},
        published_at=published if published and published.timestamp() > 0 else None,
    )


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + MAX_IDS_PER_REQUEST] for i in range(0, len(items), MAX_IDS_PER_REQUEST)]


def _translate(exc: gexc.GoogleAPICallError, subscription: str) -> DispatchError:
    if isinstance(exc, gexc.NotFound):
        return DispatchError(f"subscription {subscription} does not exist")
    if isinstance(exc, gexc.PermissionDenied):
        return DispatchError(f"not allowed to use subscription {subscription}: {exc.message}")
    return TransientError(f"Pub/Sub call on {subscription} failed: {exc}")
