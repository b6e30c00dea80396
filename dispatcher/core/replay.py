"""What a dead letter says, and what replaying it publishes.

Operators decide from a dead letter's reason whether a replay can help, and a replay must send
exactly what the upstream system sent: the original body and attributes, without the
dispatcher's ``dlq_*`` bookkeeping. Both are pure functions over plain values, so the contract
is pinned by unit tests without a Pub/Sub server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatcher.core.order import Reason, salvage_order_id

DLQ_PREFIX = "dlq_"
#: Attributes the dispatcher adds besides ``dlq_*`` (DESIGN.md, "Dead letters").
ADDED_ATTRIBUTES = frozenset({"original_message_id", "original_publish_time", "dispatcher_version"})
#: Pub/Sub's own dead-letter policy adds these (delivery count, source subscription, ...).
PUBSUB_PREFIX = "CloudPubSubDeadLetterSource"
REPLAYED_FROM = "replayed_from"

#: Pseudo reasons for dead letters that carry no ``dlq_reason``.
MAX_DELIVERY_ATTEMPTS = "max_delivery_attempts"
UNKNOWN = "unknown"
REASON_CODES: tuple[str, ...] = (*(r.value for r in Reason), MAX_DELIVERY_ATTEMPTS, UNKNOWN)

#: Reasons where the message itself is at fault: replaying the same bytes fails the same way.
CONTENT_REASONS = frozenset(
    {
        Reason.BODY_TOO_LARGE,
        Reason.INVALID_ENCODING,
        Reason.INVALID_JSON,
        Reason.DUPLICATE_KEY,
        Reason.NOT_AN_OBJECT,
        Reason.SCHEMA,
        Reason.UNSUPPORTED_SCHEMA_VERSION,
        Reason.ATTRIBUTE_MISMATCH,
    }
)


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One message on the dead-letter subscription, as pulled."""

    message_id: str
    data: bytes
    attributes: Mapping[str, str] = field(default_factory=dict)
    published_at: datetime | None = None

    @property
    def from_pubsub_policy(self) -> bool:
        return any(key.startswith(PUBSUB_PREFIX) for key in self.attributes)

    @property
    def reason(self) -> str:
        if reason := self.attributes.get("dlq_reason"):
            return reason
        return MAX_DELIVERY_ATTEMPTS if self.from_pubsub_policy else UNKNOWN

    @property
    def stage(self) -> str:
        if stage := self.attributes.get("dlq_stage"):
            return stage
        return "pubsub" if self.from_pubsub_policy else ""

    @property
    def detail(self) -> str:
        if detail := self.attributes.get("dlq_detail"):
            return detail
        attempts = self.attributes.get(f"{PUBSUB_PREFIX}DeliveryCount")
        if attempts:
            source = self.attributes.get(f"{PUBSUB_PREFIX}Subscription", "its subscription")
            return f"Pub/Sub gave up after {attempts} delivery attempts on {source}"
        return ""

    @property
    def order_id(self) -> str | None:
        """The ``order_id`` attribute, else the body's ``order_id`` when it can be read."""
        return self.attributes.get("order_id") or salvage_order_id(self.data)

    @property
    def original_published_at(self) -> datetime | None:
        for key in ("original_publish_time", f"{PUBSUB_PREFIX}TopicPublishTime"):
            if parsed := _parse_time(self.attributes.get(key, "")):
                return parsed
        return self.published_at

    def age_seconds(self, now: datetime) -> float | None:
        """How long ago upstream published the order (the dead letter's time as fallback)."""
        since = self.original_published_at
        return None if since is None else max(0.0, (now - since).total_seconds())

    def to_json(self, now: datetime) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message_id": self.message_id,
            "order_id": self.order_id,
            "reason": self.reason,
            "stage": self.stage,
            "detail": self.detail,
            "age_seconds": self.age_seconds(now),
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "attributes": dict(sorted(self.attributes.items())),
        }
        try:
            body["data"] = self.data.decode("utf-8")
        except UnicodeDecodeError:
            body["data_hex"] = self.data.hex()
        return body


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters an operator means; empty sets select everything."""

    reasons: frozenset[str] = frozenset()
    order_ids: frozenset[str] = frozenset()
    stages: frozenset[str] = frozenset()
    #: Only dead letters published (dead-lettered) at or after this time; None: any time.
    since: datetime | None = None

    def matches(self, record: DeadLetterRecord) -> bool:
        if self.reasons and record.reason not in self.reasons:
            return False
        if self.stages and record.stage not in self.stages:
            return False
        if self.since is not None and (
            record.published_at is None or record.published_at < self.since
        ):
            return False
        return not self.order_ids or record.order_id in self.order_ids


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, *, now: datetime) -> datetime:
    """``90m``, ``2h``, ``1d`` before ``now``, or an ISO 8601 time (UTC when it names no zone).

    Raises ValueError for anything else."""
    number, unit = text[:-1], text[-1:]
    if unit in _UNITS and number.isdigit():
        return now - timedelta(seconds=int(number) * _UNITS[unit])
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def replay_attributes(attributes: Mapping[str, str], *, dead_letter_id: str) -> dict[str, str]:
    """The original attributes: without the dead-letter bookkeeping, with ``replayed_from``.

    Only the attributes the dispatcher and Pub/Sub add are removed (``dlq_*``, the three
    named in the contract, ``CloudPubSubDeadLetterSource*``); anything upstream sent stays,
    including ``order_id``.
    """
    kept = {
        key: value
        for key, value in attributes.items()
        if not key.startswith((DLQ_PREFIX, PUBSUB_PREFIX)) and key not in ADDED_ATTRIBUTES
    }
    kept[REPLAYED_FROM] = dead_letter_id
    return kept


def reason_counts(records: Iterable[DeadLetterRecord]) -> list[tuple[str, int]]:
    """Dead letters per reason, most frequent first (ties by name)."""
    return ranked(Counter(record.reason for record in records))


def ranked(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """Counts per reason, most frequent first (ties by name)."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def replay_fails_again(reason: str) -> bool:
    """True when the message content caused the rejection, so a replay meets the same fate."""
    return reason in CONTENT_REASONS


def _parse_time(text: str) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
