"""Pub/Sub's message limits, checked before a publish instead of discovered by one.

Why: ``PublisherClient.publish`` raises ``MessageTooLargeError`` synchronously, on the
caller's thread, when one message would make a ``PublishRequest`` larger than 10,000,000
bytes (``google.cloud.pubsub_v1.publisher._batch.thread``: the serialized request, topic name
included). The server refuses more than 100 attributes, keys over 256 bytes and values over
1024 bytes (https://cloud.google.com/pubsub/quotas#resource_limits). A dead letter adds
``dlq_*`` attributes to a message that already fit, so it can cross these limits; knowing the
size in advance lets the caller pick a smaller attribute set or report the message as one
that cannot be published, without an exception in flight.

The size is computed from the protobuf wire format (no copy of a 10 MB body); a unit test
holds it equal to the client's own ``ByteSize()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dispatcher.errors import DispatchError

MAX_REQUEST_BYTES = 10_000_000
MAX_ATTRIBUTES = 100
MAX_KEY_BYTES = 256
MAX_VALUE_BYTES = 1024


class TooLargeToPublish(DispatchError):
    """The message cannot be published as it is: over a size or attribute limit.

    Retrying cannot help, and the delivery it came from is neither acked nor nacked: the
    caller decides (for instance, leave it to Pub/Sub's own dead-letter policy).
    """


class TooLargeToDeadLetter(TooLargeToPublish):
    """Even the compact dead letter does not fit; nothing was published."""


def _varint_bytes(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def _field_bytes(payload: int) -> int:
    """A length-delimited field with a one-byte tag (field numbers 1-15)."""
    return 1 + _varint_bytes(payload) + payload


def _string_field_bytes(value: str) -> int:
    """A proto3 string field: absent when empty."""
    length = len(value.encode("utf-8"))
    return _field_bytes(length) if length else 0


def attribute_bytes(attributes: Mapping[str, str]) -> int:
    """Serialized size of the ``attributes`` map of a ``PubsubMessage``."""
    total = 0
    for key, value in attributes.items():
        # A map entry writes its key and value even when empty (unlike a proto3 field).
        entry = _field_bytes(len(key.encode("utf-8"))) + _field_bytes(len(value.encode("utf-8")))
        total += _field_bytes(entry)
    return total


def message_bytes(data_length: int, attributes: Mapping[str, str]) -> int:
    """Serialized size of a ``PubsubMessage`` with ``data_length`` bytes of data."""
    data = _field_bytes(data_length) if data_length else 0
    return data + attribute_bytes(attributes)


def publish_request_bytes(topic: str, data_length: int, attributes: Mapping[str, str]) -> int:
    """Serialized size of a ``PublishRequest`` carrying this one message (the client's rule)."""
    return _string_field_bytes(topic) + _field_bytes(message_bytes(data_length, attributes))


def max_data_bytes(topic: str, attributes: Mapping[str, str]) -> int:
    """The largest body that can be published to ``topic`` with ``attributes`` (-1: none)."""
    low, high = -1, MAX_REQUEST_BYTES  # invariant: low fits (or is -1), high does not
    while high - low > 1:
        middle = (low + high) // 2
        if publish_request_bytes(topic, middle, attributes) <= MAX_REQUEST_BYTES:
            low = middle
        else:
            high = middle
    return low


def attribute_problem(attributes: Mapping[str, str]) -> str | None:
    """The first attribute limit the server would refuse, in words; None if all hold."""
    if len(attributes) > MAX_ATTRIBUTES:
        return f"{len(attributes)} attributes (Pub/Sub allows {MAX_ATTRIBUTES})"
    for key, value in attributes.items():
        key_length = len(key.encode("utf-8"))
        if key_length > MAX_KEY_BYTES:
            return f"attribute key of {key_length} bytes (Pub/Sub allows {MAX_KEY_BYTES})"
        value_length = len(value.encode("utf-8"))
        if value_length > MAX_VALUE_BYTES:
            return (
                f"attribute {key[:64]!r} of {value_length} bytes (Pub/Sub allows {MAX_VALUE_BYTES})"
            )
    return None


#: Below these, a message fits whatever its characters (a code point is at most 4 UTF-8
#: bytes; 100 attributes at the key/value bounds add < 130 kB): the routing path, which
#: republishes every order, skips the exact computation.
_QUICK_DATA_BYTES = 9_000_000
_QUICK_TOPIC_CHARS = 1000


def _obviously_fits(topic: str, data_length: int, attributes: Mapping[str, str]) -> bool:
    if data_length > _QUICK_DATA_BYTES or len(topic) > _QUICK_TOPIC_CHARS:
        return False
    if len(attributes) > MAX_ATTRIBUTES:
        return False
    key_chars, value_chars = MAX_KEY_BYTES // 4, MAX_VALUE_BYTES // 4
    return all(len(k) <= key_chars and len(v) <= value_chars for k, v in attributes.items())


def publish_problem(topic: str, data_length: int, attributes: Mapping[str, str]) -> str | None:
    """Why this message cannot be published (size first, then attributes); None if it can."""
    if _obviously_fits(topic, data_length, attributes):
        return None
    size = publish_request_bytes(topic, data_length, attributes)
    if size > MAX_REQUEST_BYTES:
        return f"publish request of {size} bytes (Pub/Sub allows {MAX_REQUEST_BYTES})"
    return attribute_problem(attributes)


def first_that_fits(
    topic: str, data_length: int, candidates: Iterable[dict[str, str]]
) -> dict[str, str] | None:
    """The first attribute set with which the message can be published, or None."""
    for attributes in candidates:
        if publish_problem(topic, data_length, attributes) is None:
            return attributes
    return None
