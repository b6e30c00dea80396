"""What the cluster holds, kept current by a list + watch of the dispatcher's own Workflows.

The engine asks, for every delivery, whether the order is already inside a Workflow, and for
every admission how many Workflows of a class are live. Both answers come from memory kept
current by one watch (label selector: managed-by + environment), never from an API call in
the hot path. A 410 Gone (expired resourceVersion) relists. Orders of Workflows that Argo's
TTL has deleted are found in the dedupe ledger (``adapters/ledger.py``), which is durable:
process memory would be empty after every restart or rollout.

Live Workflows are counted by class *and* by the replica label that made them, so a replica
can count every live Workflow of a class against the cap, its own against its share, and
those of replicas that are gone (a rollout) as orphans shared out among the members.

A create is counted as soon as this process made it (``record_created``), before the watch
reports it; but the engine learns of a create only after the ledger has stored its order ids,
which can be later than the watch's ADDED and even its DELETED. So names the watch saw go are
remembered, and a late ``record_created`` cannot bring them back: it once kept deleted
Workflows counted forever and held every order behind the object cap. As a guard against any
other way of counting an object the server does not hold, a create the watch has not
confirmed within ``confirm_seconds`` ends the watch and relists.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from dispatcher.adapters.kube import GROUP, REQUEST_TIMEOUT, VERSION
from dispatcher.core.ports import OrderLedger
from dispatcher.core.render import (
    ANNOTATION_ORDER_IDS,
    LABEL_CLASS,
    LABEL_REPLICA,
    is_live,
    selector,
)
from dispatcher.logging import get_logger

log = get_logger()

WATCH_SECONDS = 30  # a watch that stalls silently is replaced within this; resuming is cheap
CONFIRM_SECONDS = 10.0  # a create the watch has not reported by then means the view is stale
GONE_REMEMBERED = 10_000  # deleted names kept so a late record_created cannot revive them


@dataclass(frozen=True, slots=True)
class _Entry:
    size_class: str
    live: bool
    replica: str
    order_ids: tuple[str, ...]


def entry_of(obj: dict[str, Any]) -> _Entry:
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    try:
        order_ids = tuple(json.loads(annotations.get(ANNOTATION_ORDER_IDS, "[]")))
    except ValueError:
        order_ids = ()
    return _Entry(
        labels.get(LABEL_CLASS, ""), is_live(obj), labels.get(LABEL_REPLICA, ""), order_ids
    )


class WorkflowView:
    """The ClusterState the engine reads, fed by a watch thread."""

    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        namespace: str,
        environment: str,
        identity: str = "",
        ledger: OrderLedger | None = None,
        watch_seconds: int = WATCH_SECONDS,
        confirm_seconds: float = CONFIRM_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._objects_api = k8s.CustomObjectsApi(api)
        self._namespace = namespace
        self._selector = selector(environment)
        self._identity = identity
        self._ledger = ledger
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._orders: dict[str, str] = {}
        self._live: dict[str, Counter[str]] = {}
        self._gone: dict[str, None] = {}  # ordered set: oldest first
        self._unconfirmed: dict[str, float] = {}  # recorded here, not yet seen by the watch
        self._watch_seconds = watch_seconds
        self._confirm_seconds = confirm_seconds
        self._clock = clock
        self.relists = 0
        self._resource_version = ""
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workflow-watch", daemon=True)

    # -- ClusterState ------------------------------------------------------------------
    def contains(self, order_id: str) -> bool:
        if order_id in self._orders:
            return True
        return self._ledger is not None and self._ledger.contains(order_id)

    def live_by_replica(self, size_class: str) -> dict[str, int]:
        with self._lock:  # a copy: the watch thread changes the counts while the engine reads
            return dict(self._live.get(size_class) or {})

    def objects_total(self) -> int:
        return len(self._entries)

    def order_ids(self) -> list[str]:
        """Every order id in a Workflow that exists now (for the ledger's start-up check)."""
        with self._lock:
            return list(self._orders)

    def record_created(self, name: str, size_class: str, order_ids: tuple[str, ...]) -> None:
        with self._lock:
            if name in self._entries or name in self._gone:
                return  # already reported by the watch, or even already deleted
            self._put(name, _Entry(size_class, True, self._identity, order_ids))
            self._unconfirmed[name] = self._clock()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        if not self._synced.wait(timeout):
            raise TimeoutError("could not list Workflows from the API server")

    def stop(self) -> None:
        self._stop.set()

    def synced(self) -> bool:
        return self._synced.is_set()

    # -- internals ---------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if not self._resource_version:
                    self._relist()
                self._watch()
                backoff = 0.5
            except ApiException as exc:
                if exc.status == 410:
                    log.info("workflow_watch_expired", action="relist")
                    self._resource_version = ""
                    continue
                log.warning("workflow_watch_failed", status=exc.status, error=str(exc.reason))
            except Exception as exc:  # noqa: BLE001 - reported, never swallowed silently
                log.warning("workflow_watch_failed", error=f"{type(exc).__name__}: {exc}")
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)

    def _relist(self) -> None:
        fresh: dict[str, _Entry] = {}
        token: str | None = None
        while True:
            page = self._objects_api.list_namespaced_custom_object(
                GROUP,
                VERSION,
                self._namespace,
                "workflows",
                label_selector=self._selector,
                limit=500,
                _continue=token,
                _request_timeout=REQUEST_TIMEOUT,
            )
            for obj in page.get("items", []):
                fresh[obj["metadata"]["name"]] = entry_of(obj)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                self._resource_version = page["metadata"]["resourceVersion"]
                break
        with self._lock:
            for name in list(self._entries):
                if name not in fresh:
                    self._gone_from_server(name)
            for name, entry in fresh.items():
                self._seen(name, entry)
        self.relists += 1
        self._synced.set()

    def _watch(self) -> None:
        if self._stale():
            self._resource_version = ""  # relist: the listing is the truth
            return
        stream = k8s_watch.Watch().stream(
            self._objects_api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self._namespace,
            "workflows",
            label_selector=self._selector,
            resource_version=self._resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_seconds,
            _request_timeout=(REQUEST_TIMEOUT[0], self._watch_seconds + 30),
        )
        for event in stream:
            if self._stop.is_set():
                return
            if self._stale():
                self._resource_version = ""
                return
            kind, obj = event["type"], event["object"]
            if kind == "ERROR":
                code = obj.get("code") if isinstance(obj, dict) else None
                raise ApiException(status=code or 500, reason=str(obj))
            metadata = obj.get("metadata") or {}
            self._resource_version = metadata.get("resourceVersion", self._resource_version)
            if kind == "BOOKMARK":
                continue
            name = metadata["name"]
            with self._lock:
                if kind == "DELETED":
                    self._gone_from_server(name)
                else:
                    self._seen(name, entry_of(obj))

    def _stale(self) -> bool:
        """True if a create recorded here went unreported by the watch for too long."""
        with self._lock:
            oldest = min(self._unconfirmed.values(), default=None)
        if oldest is None or self._clock() - oldest < self._confirm_seconds:
            return False
        log.warning("workflow_watch_stale", unconfirmed=len(self._unconfirmed), action="relist")
        return True

    def _seen(self, name: str, entry: _Entry) -> None:
        self._unconfirmed.pop(name, None)
        self._gone.pop(name, None)  # the same name made again: it exists now
        self._put(name, entry)

    def _gone_from_server(self, name: str) -> None:
        self._unconfirmed.pop(name, None)
        self._drop(name)
        self._gone[name] = None
        if len(self._gone) > GONE_REMEMBERED:
            del self._gone[next(iter(self._gone))]

    def _put(self, name: str, entry: _Entry) -> None:
        old = self._entries.get(name)
        if old is not None:
            self._count(old, -1)
        elif self._ledger is not None:
            self._remember(name, entry.order_ids)
        self._entries[name] = entry
        self._count(entry, +1)
        for order_id in entry.order_ids:
            self._orders[order_id] = name

    def _remember(self, name: str, order_ids: tuple[str, ...]) -> None:
        """Every Workflow any replica sees goes into the ledger (if its creator could not, e.g.
        it crashed between the create and its ledger write), long before Argo's TTL deletes it."""
        ledger = self._ledger
        if ledger is None:
            return
        missing = [o for o in order_ids if not ledger.contains(o)]
        if missing:

            def done(error: BaseException | None) -> None:
                if error is not None:
                    log.warning("ledger_write_failed", workflow=name, error=str(error))

            ledger.record(missing, done)

    def _drop(self, name: str) -> None:
        old = self._entries.pop(name, None)
        if old is None:
            return
        self._count(old, -1)
        for order_id in old.order_ids:
            if self._orders.get(order_id) == name:
                del self._orders[order_id]

    def _count(self, entry: _Entry, delta: int) -> None:
        if entry.live:
            counts = self._live.setdefault(entry.size_class, Counter())
            counts[entry.replica] += delta
            if counts[entry.replica] <= 0:
                del counts[entry.replica]
