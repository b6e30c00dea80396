"""Per-order claims in ConfigMaps: one object per replica, read by all with a strong list.

``core/claims.py`` says why claims exist and what they hold. Here they live in the
dispatcher's namespace as ConfigMaps (the RBAC the ledger already needs: no new store, no
new permission): each replica rewrites only its own object (``resourceVersion`` guards
against a second process under the same identity), then lists every replica's claims object
of the environment. A list without ``resourceVersion`` is served from etcd by quorum read,
so it sees every write that completed before it: that is the property claims rest on.

Cost: two API calls per Workflow created (one update, one list), each a few KiB: an object
holds the orders this replica claimed within the hold (16 bytes each). Objects of replicas
that are gone are deleted by whichever replica finds them expired.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import tenacity
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from dispatcher.adapters.kube import create_retry_policy, translate
from dispatcher.core import claims as claim_rules
from dispatcher.core import dedupe
from dispatcher.core.render import LABEL_ENVIRONMENT, LABEL_MANAGED_BY, MANAGED_BY
from dispatcher.errors import TransientError
from dispatcher.logging import get_logger

log = get_logger()

LABEL_CLAIMS = "burst-dispatcher.io/claims"
ANNOTATION_WRITTEN = "burst-dispatcher.io/claims-written"
KEY_CLAIMS = "claims"
REQUEST_TIMEOUT = (5.0, 10.0)
STALE_AFTER_HOLDS = 10  # an expired object untouched this many holds long is deleted


def claims_selector(environment: str) -> str:
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_ENVIRONMENT}={environment},{LABEL_CLAIMS}=true"


def claims_object_name(environment: str, identity: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in environment.lower())[:30].strip("-")
    return f"bd-claims-{slug or 'x'}-{dedupe.writer_key(environment, identity)}"


class KubeClaims:
    """The real :class:`~dispatcher.core.ports.Claims`."""

    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        namespace: str,
        environment: str,
        identity: str,
        hold_seconds: float = claim_rules.DEFAULT_HOLD_SECONDS,
        clock: Callable[[], float] = time.time,
        retry: tenacity.Retrying | None = None,
    ) -> None:
        self._core = k8s.CoreV1Api(api)
        self._namespace = namespace
        self._environment = environment
        self._name = claims_object_name(environment, identity)
        self._selector = claims_selector(environment)
        self._clock = clock
        self._book = claim_rules.ClaimBook(hold_seconds)
        self._retry = retry or create_retry_policy(attempts=3, max_seconds=5.0)
        self._version: str | None = None
        self._lock = threading.Lock()
        self.calls = {"update": 0, "create": 0, "get": 0, "list": 0, "delete": 0}

    @property
    def name(self) -> str:
        return self._name

    def claim(self, order_ids: Sequence[str], *, renew: bool) -> frozenset[str]:
        with self._lock:
            now = self._clock()
            mine = claim_rules.digests_of(order_ids)
            self._book.add(mine, now=now)
            self._retry(self._write, now)
            if renew:
                return frozenset()
            others = self._retry(self._others, now)
            contested = claim_rules.contested(mine, others, now=now)
            if contested:
                self._book.withdraw(d for d, o in mine.items() if o in contested)
                self._retry(self._write, now)
            return contested

    def close(self) -> None:
        """Stop claiming: delete this replica's object (best effort; others expire it)."""
        with self._lock:
            try:
                self._delete(self._name)
            except Exception as exc:  # noqa: BLE001 - expired claims are harmless
                log.warning("claims_delete_failed", error=str(exc))

    # -- API calls ---------------------------------------------------------------------
    def _write(self, now: float) -> None:
        body = self._body(now)
        try:
            if self._version is None:
                self.calls["create"] += 1
                made = self._core.create_namespaced_config_map(
                    self._namespace, body, _request_timeout=REQUEST_TIMEOUT
                )
            else:
                body["metadata"]["resourceVersion"] = self._version
                self.calls["update"] += 1
                made = self._core.replace_namespaced_config_map(
                    self._name, self._namespace, body, _request_timeout=REQUEST_TIMEOUT
                )
        except ApiException as exc:
            if exc.status in (404, 409):
                self._adopt_version()
                raise TransientError(f"claims object {self._name}: {exc.status}") from exc
            raise translate(exc) from exc
        except Exception as exc:
            raise translate(exc) from exc
        self._version = str(made.metadata.resource_version)

    def _adopt_version(self) -> None:
        self.calls["get"] += 1
        try:
            found = self._core.read_namespaced_config_map(
                self._name, self._namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                self._version = None
                return
            raise translate(exc) from exc
        self._version = str(found.metadata.resource_version)

    def _others(self, now: float) -> list[dict[bytes, int]]:
        self.calls["list"] += 1
        try:
            listed = self._core.list_namespaced_config_map(
                self._namespace, label_selector=self._selector, _request_timeout=REQUEST_TIMEOUT
            )
        except Exception as exc:
            raise translate(exc) from exc
        found = []
        for item in listed.items:
            name = item.metadata.name
            if name == self._name:
                continue
            entries = _entries(item)
            found.append(entries)
            if not any(until > now for until in entries.values()):
                self._collect(item, now)
        return found

    def _collect(self, item: Any, now: float) -> None:
        written = float((item.metadata.annotations or {}).get(ANNOTATION_WRITTEN, "0") or 0)
        if now - written > STALE_AFTER_HOLDS * self._book.hold_seconds:
            try:
                self._delete(item.metadata.name)
            except Exception as exc:  # noqa: BLE001 - someone else may collect it
                log.info("claims_collect_failed", name=item.metadata.name, error=str(exc))

    def _delete(self, name: str) -> None:
        self.calls["delete"] += 1
        try:
            self._core.delete_namespaced_config_map(
                name, self._namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status != 404:
                raise translate(exc) from exc

    def _body(self, now: float) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self._name,
                "labels": {
                    LABEL_MANAGED_BY: MANAGED_BY,
                    LABEL_ENVIRONMENT: self._environment,
                    LABEL_CLAIMS: "true",
                },
                "annotations": {ANNOTATION_WRITTEN: f"{now:.0f}"},
            },
            "binaryData": {KEY_CLAIMS: base64.b64encode(self._book.blob()).decode()},
        }


def _entries(item: Any) -> dict[bytes, int]:
    raw = (item.binary_data or {}).get(KEY_CLAIMS, "")
    try:
        return claim_rules.unpack(base64.b64decode(raw))
    except ValueError:
        return {}
