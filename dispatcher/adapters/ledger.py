"""The durable order-id dedupe ledger, kept in ConfigMaps of the dispatcher's namespace.

Process memory forgets every order at a restart, and Argo's TTL deletes Workflows long before
the 24 h dedupe window ends; a redelivery after either would become a second Workflow. This
ledger keeps 12-byte digests of dispatched order ids in Kubernetes objects: no new store for
a GKE user to run or pay for, and the same API server the tests run against.

Each replica writes only its own objects (one per writer, hour bucket and chunk), so writers
never contend; every replica follows all of them (``ledger_watch``). ``record`` only buffers:
one flusher thread appends everything buffered in a flush period with one update, so the hot
path never waits on I/O and a burst of orders costs a few API calls, not one per order.
Buckets older than the window are deleted by whichever replica notices first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tenacity
from kubernetes import client as k8s

from dispatcher.adapters.kube import create_retry_policy
from dispatcher.adapters.ledger_store import LedgerObjects
from dispatcher.adapters.ledger_watch import LedgerWatch
from dispatcher.core import dedupe
from dispatcher.errors import DispatchError
from dispatcher.logging import get_logger

log = get_logger()

Callback = Callable[[BaseException | None], None]
DEFAULT_CHUNK_BYTES = 16 * 1024
PRUNE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class LedgerStats:
    """What the ledger did so far: writes by verb and bytes sent, what it holds, its watch."""

    calls: dict[str, int]
    request_bytes: int
    stored_bytes: int
    digests: int
    relists: int
    watches: int
    watch_failures: int


class KubeLedger:
    """The real :class:`~dispatcher.core.ports.OrderLedger`, in ConfigMaps."""

    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        namespace: str,
        environment: str,
        identity: str,
        window_seconds: float = dedupe.DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
        flush_seconds: float = 0.5,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        prune_seconds: float = PRUNE_SECONDS,
        watch_seconds: int = 240,
        retry: tenacity.Retrying | None = None,
    ) -> None:
        if chunk_bytes < dedupe.DIGEST_BYTES:
            raise ValueError(f"chunk_bytes must hold one digest ({dedupe.DIGEST_BYTES} bytes)")
        self._window = window_seconds
        self._clock = clock
        self._flush_seconds = flush_seconds
        self._prune_seconds = prune_seconds
        self._retry = retry or create_retry_policy(attempts=5, max_seconds=10.0)
        self._lock = threading.Lock()
        self._index = dedupe.DigestIndex()
        core = k8s.CoreV1Api(api)
        self._objects = LedgerObjects(
            core,
            namespace=namespace,
            environment=environment,
            identity=identity,
            index=self._index,
            lock=self._lock,
            chunk_bytes=chunk_bytes,
        )
        self._watch = LedgerWatch(
            core,
            namespace=namespace,
            environment=environment,
            index=self._index,
            lock=self._lock,
            own_prefix=dedupe.writer_prefix(environment, identity),
            watch_seconds=watch_seconds,
        )
        # Digests recorded here and not yet written, in order; dict as an ordered set.
        self._pending: dict[bytes, None] = {}
        self._callbacks: list[Callback] = []
        self._flushing = threading.Lock()  # one writer of this replica's objects at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._run, name="ledger-flush", daemon=True)
        self._last_prune = float("-inf")

    # -- OrderLedger ---------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        self._watch.start()
        if not self._watch.synced.wait(timeout):
            self._watch.stop()
            raise TimeoutError("could not list the dedupe ledger from the API server")
        self._flusher.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._flusher.is_alive():
            self._flusher.join(timeout=30.0)
        self._watch.stop()

    def synced(self) -> bool:
        return self._watch.synced.is_set()

    def contains(self, order_id: str) -> bool:
        # Two dict lookups, atomic under the GIL: no lock, so never behind a flush or relist.
        value = dedupe.digest(order_id)
        return value in self._index or value in self._pending

    def record(self, order_ids: Sequence[str], on_done: Callback) -> None:
        """Buffer ``order_ids``; ``on_done`` runs later on the flusher thread, once."""
        digests = [dedupe.digest(order_id) for order_id in order_ids]
        with self._lock:
            for value in digests:
                self._pending[value] = None
            self._callbacks.append(on_done)

    # -- observation ---------------------------------------------------------------------
    def stats(self) -> LedgerStats:
        with self._lock:
            return LedgerStats(
                calls=dict(self._objects.calls),
                request_bytes=self._objects.request_bytes,
                stored_bytes=self._index.stored_bytes(),
                digests=len(self._index),
                relists=self._watch.relists,
                watches=self._watch.watches,
                watch_failures=self._watch.failures,
            )

    # -- flusher -------------------------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        while True:
            delay = self._flush_seconds * (2 ** min(failures, 6))
            self._wake.wait(min(delay, 30.0))
            stopping = self._stop.is_set()
            failures = 0 if self.flush() else failures + 1
            self._prune_if_due()
            if stopping:
                return

    def flush(self) -> bool:
        """Write everything buffered with one append; False if the write failed."""
        with self._flushing:
            return self._flush()

    def _flush(self) -> bool:
        with self._lock:
            callbacks, self._callbacks = self._callbacks, []
            batch = [value for value in self._pending if value not in self._index]
            for value in [value for value in self._pending if value in self._index]:
                del self._pending[value]
        error: BaseException | None = None
        if batch:
            try:
                self._retry(self._objects.append, batch, bucket=self._bucket())
            except Exception as exc:  # noqa: BLE001 - a dropped connection too: never end the flusher
                error = exc
                log.warning("ledger_write_failed", digests=len(batch), error=str(exc))
            else:
                with self._lock:
                    for value in batch:
                        self._pending.pop(value, None)
        for callback in callbacks:
            try:
                callback(error)
            except Exception:  # a caller's bug must not stop the ledger
                log.exception("ledger_callback_failed")
        return error is None

    def _bucket(self) -> int:
        return dedupe.bucket_start(self._clock())

    def _prune_if_due(self) -> None:
        now = self._clock()
        if now - self._last_prune < self._prune_seconds or self._stop.is_set():
            return
        self._last_prune = now
        self.prune()

    def prune(self) -> int:
        """Delete every ledger object whose bucket has left the window; how many went."""
        now = self._clock()
        with self._lock:
            expired = [
                name
                for name in self._index.names()
                if dedupe.bucket_expired(
                    self._index.bucket_of(name) or 0, now=now, window_seconds=self._window
                )
            ]
        deleted = 0
        with self._flushing:
            for name in expired:
                deleted += self._delete(name)
        if deleted:
            log.info("ledger_pruned", objects=deleted)
        return deleted

    def _delete(self, name: str) -> int:
        try:
            self._objects.delete(name)
        except DispatchError as exc:
            log.warning("ledger_prune_failed", name=name, error=str(exc))
            return 0
        return 1
