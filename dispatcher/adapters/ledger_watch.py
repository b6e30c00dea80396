"""What a ledger ConfigMap looks like, and how every replica follows all of them.

Every replica must answer "was this order already dispatched?" from memory, for ids written
by any replica, including ones long gone. So each replica lists the environment's ledger
ConfigMaps once (start-up, and again after a 410 Gone) and then watches them, folding every
object into a :class:`~dispatcher.core.dedupe.DigestIndex`. Objects are append-only, so a
MODIFIED event costs only its new tail; a DELETED one (pruning) drops the object's digests.
"""

from __future__ import annotations

import base64
import binascii
import threading
from typing import Any

from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from dispatcher.core.dedupe import DIGEST_ALGORITHM, DigestIndex
from dispatcher.core.render import LABEL_ENVIRONMENT, LABEL_MANAGED_BY, MANAGED_BY
from dispatcher.logging import get_logger

log = get_logger()

LABEL_LEDGER = "burst-dispatcher.io/ledger"
LABEL_BUCKET = "burst-dispatcher.io/ledger-bucket"
ANNOTATION_WRITER = "burst-dispatcher.io/ledger-writer"
KEY_DIGESTS = "digests"
KEY_BUCKET = "bucket-start"
KEY_ALGORITHM = "digest-algorithm"
REQUEST_TIMEOUT = (5.0, 20.0)


def ledger_selector(environment: str) -> str:
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_ENVIRONMENT}={environment},{LABEL_LEDGER}=true"


def ledger_body(
    *, name: str, environment: str, identity: str, bucket: int, blob: bytes, version: str = ""
) -> dict[str, Any]:
    """A ConfigMap holding ``blob``; with ``version`` it is an optimistic-concurrency update."""
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {
            LABEL_MANAGED_BY: MANAGED_BY,
            LABEL_ENVIRONMENT: environment,
            LABEL_LEDGER: "true",
            LABEL_BUCKET: str(bucket),
        },
        "annotations": {ANNOTATION_WRITER: identity[:253]},
    }
    if version:
        metadata["resourceVersion"] = version
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {KEY_BUCKET: str(bucket), KEY_ALGORITHM: DIGEST_ALGORITHM},
        "binaryData": {KEY_DIGESTS: base64.b64encode(blob).decode("ascii")},
    }


def decode(obj: Any) -> tuple[str, int, bytes] | None:
    """(name, bucket start, digest blob) of a ConfigMap model; None if it is not readable."""
    data = obj.data or {}
    try:
        bucket = int(data.get(KEY_BUCKET, ""))
        blob = base64.b64decode((obj.binary_data or {}).get(KEY_DIGESTS, ""), validate=True)
    except (ValueError, binascii.Error):
        return None
    if data.get(KEY_ALGORITHM) != DIGEST_ALGORITHM:
        return None
    return str(obj.metadata.name), bucket, blob


class LedgerWatch:
    """Keeps ``index`` equal to the ledger objects on the server (list, watch, relist on 410)."""

    def __init__(
        self,
        api: k8s.CoreV1Api,
        *,
        namespace: str,
        environment: str,
        index: DigestIndex,
        lock: threading.Lock,
        own_prefix: str = "",
        watch_seconds: int = 240,
    ) -> None:
        self._api = api
        self._own_prefix = own_prefix
        self._namespace = namespace
        self._selector = ledger_selector(environment)
        self._index = index
        self._lock = lock
        self._watch_seconds = watch_seconds
        self._version = ""
        self.relists = 0
        self.watches = 0  # watch calls that ended normally (server-side timeout)
        self.failures = 0
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if not self._version:
                    self._relist()
                self._watch()
                self.watches += 1
                backoff = 0.5
                continue
            except ApiException as exc:
                if exc.status == 410:
                    log.info("ledger_watch_expired", action="relist")
                    self._version = ""
                    continue
                self.failures += 1
                log.warning("ledger_watch_failed", status=exc.status, error=str(exc.reason))
            except Exception as exc:  # noqa: BLE001 - reported, and the watch carries on
                self.failures += 1
                log.warning("ledger_watch_failed", error=f"{type(exc).__name__}: {exc}")
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)

    def _relist(self) -> None:
        fresh: dict[str, tuple[int, bytes]] = {}
        token: str | None = None
        while True:
            page = self._api.list_namespaced_config_map(
                self._namespace,
                label_selector=self._selector,
                limit=200,
                _continue=token,
                _request_timeout=REQUEST_TIMEOUT,
            )
            for obj in page.items or []:
                decoded = decode(obj)
                if decoded is not None:
                    fresh[decoded[0]] = decoded[1:]
            token = page.metadata._continue
            if not token:
                version = str(page.metadata.resource_version)
                break
        with self._lock:
            for name in self._index.names() - set(fresh):
                # This writer's own objects may be newer than the listing; they leave the
                # index through DELETED events or this writer's own pruning (404 is fine).
                if not (self._own_prefix and name.startswith(self._own_prefix)):
                    self._index.drop(name)
            for name, (bucket, blob) in fresh.items():
                self._index.put(name, bucket=bucket, blob=blob)
        self._version = version
        self.relists += 1
        self.synced.set()

    def _watch(self) -> None:
        stream = k8s_watch.Watch().stream(
            self._api.list_namespaced_config_map,
            self._namespace,
            label_selector=self._selector,
            resource_version=self._version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_seconds,
            _request_timeout=(REQUEST_TIMEOUT[0], self._watch_seconds + 30),
        )
        for event in stream:
            if self._stop.is_set():
                return
            kind, obj = event["type"], event["object"]
            raw = event.get("raw_object") or {}
            if kind == "ERROR":
                raise ApiException(status=raw.get("code") or 500, reason=str(raw))
            if kind == "BOOKMARK":  # the client leaves these undecoded: a dict
                self._version = str(raw["metadata"]["resourceVersion"])
                continue
            self._version = str(obj.metadata.resource_version or self._version)
            self._apply(kind, obj)

    def _apply(self, kind: str, obj: Any) -> None:
        if kind == "DELETED":
            with self._lock:
                self._index.drop(str(obj.metadata.name))
            return
        decoded = decode(obj)
        if decoded is None:
            log.warning("ledger_object_unreadable", name=obj.metadata.name)
            return
        name, bucket, blob = decoded
        with self._lock:
            self._index.put(name, bucket=bucket, blob=blob)
