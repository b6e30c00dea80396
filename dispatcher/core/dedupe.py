"""The arithmetic of the order-id dedupe ledger, kept apart from any storage.

A ledger remembers which order ids became Workflows for a window (default 24 h) that must
outlive processes and Argo's Workflow TTL. Storage (Kubernetes objects, or memory in tests)
differs; what is stored does not: a fixed-width digest per order id, appended to a blob that
belongs to one writer and one time bucket. Keeping digests, buckets, names and the in-memory
index here makes them testable as plain functions and shared by the real adapter and its twin.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator

#: 96 bits: among 100 million ids the chance of any collision is about 6e-14.
DIGEST_BYTES = 12
DIGEST_ALGORITHM = "blake2b-96"
BUCKET_SECONDS = 3600
DEFAULT_WINDOW_SECONDS = 86_400.0


def digest(order_id: str) -> bytes:
    return hashlib.blake2b(order_id.encode("utf-8"), digest_size=DIGEST_BYTES).digest()


def pack(digests: Iterable[bytes]) -> bytes:
    return b"".join(digests)


def unpack(blob: bytes) -> Iterator[bytes]:
    """The digests of a blob; a torn tail (never written by this code) is ignored."""
    usable = len(blob) - len(blob) % DIGEST_BYTES
    for start in range(0, usable, DIGEST_BYTES):
        yield blob[start : start + DIGEST_BYTES]


def bucket_start(now: float, bucket_seconds: int = BUCKET_SECONDS) -> int:
    return int(now // bucket_seconds) * bucket_seconds


def bucket_expired(
    start: int, *, now: float, window_seconds: float, bucket_seconds: int = BUCKET_SECONDS
) -> bool:
    """True once every digest in the bucket is older than the window.

    A digest written at the very end of a bucket must still be honoured ``window_seconds``
    later, so a bucket is kept until its end plus the window: retention lies between the
    window and the window plus one bucket.
    """
    return start + bucket_seconds + window_seconds <= now


def _slug(text: str, limit: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return slug or "x"


def writer_key(environment: str, identity: str) -> str:
    """A short, name-safe key for one writer: identities may be long or hold any character."""
    raw = f"{environment}\x00{identity}".encode()
    return hashlib.blake2b(raw, digest_size=5).hexdigest()


def writer_prefix(environment: str, identity: str) -> str:
    """The common start of every object name of one writer."""
    return f"bd-ledger-{_slug(environment, 30)}-{writer_key(environment, identity)}-"


def object_name(*, environment: str, identity: str, bucket: int, chunk: int) -> str:
    """``bd-ledger-<env>-<writer>-<bucket>-<chunk>``: a DNS subdomain of at most 80 chars."""
    return f"{writer_prefix(environment, identity)}{bucket}-{chunk:04d}"


class DigestIndex:
    """Which digests are stored, by object, with O(1) membership.

    Objects are append-only blobs, so an update whose blob extends the known one only adds
    its tail, one that is a prefix of it is stale and ignored, and anything else (an object
    rewritten by hand) replaces the object's digests wholesale.
    A digest may sit in several objects (two replicas recorded the same order): a count per
    digest keeps it present until the last object holding it is gone. Not thread-safe; the
    owner serialises writers. Readers may call ``__contains__`` concurrently (a dict lookup).
    """

    def __init__(self) -> None:
        self._counts: dict[bytes, int] = {}
        self._blobs: dict[str, bytes] = {}
        self._buckets: dict[str, int] = {}

    def __contains__(self, value: bytes) -> bool:
        return value in self._counts

    def __len__(self) -> int:
        return len(self._counts)

    def put(self, name: str, *, bucket: int, blob: bytes) -> None:
        old = self._blobs.get(name, b"")
        if name in self._blobs and old.startswith(blob):
            # Equal, or a stale view (an event or list older than a write already seen):
            # blobs only grow, so a prefix of what is known adds nothing and removes nothing.
            self._buckets[name] = bucket
            return
        if blob.startswith(old) and len(old) % DIGEST_BYTES == 0:
            self._add(unpack(blob[len(old) :]))
        else:
            self._remove(unpack(old))
            self._add(unpack(blob))
        self._blobs[name] = blob
        self._buckets[name] = bucket

    def drop(self, name: str) -> None:
        self._remove(unpack(self._blobs.pop(name, b"")))
        self._buckets.pop(name, None)

    def names(self) -> set[str]:
        return set(self._blobs)

    def blob(self, name: str) -> bytes | None:
        return self._blobs.get(name)

    def bucket_of(self, name: str) -> int | None:
        return self._buckets.get(name)

    def stored_bytes(self) -> int:
        return sum(len(blob) for blob in self._blobs.values())

    def _add(self, digests: Iterable[bytes]) -> None:
        counts = self._counts
        for value in digests:
            counts[value] = counts.get(value, 0) + 1

    def _remove(self, digests: Iterable[bytes]) -> None:
        counts = self._counts
        for value in digests:
            left = counts.get(value, 0) - 1
            if left > 0:
                counts[value] = left
            else:
                counts.pop(value, None)
