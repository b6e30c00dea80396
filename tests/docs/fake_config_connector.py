"""A stand-in for Config Connector's controller: marks Config Connector objects Ready.

Why: the deploy guide waits for Config Connector objects with `kubectl wait`; on the test
cluster there is no controller (and no Google project) to make them Ready, so without this the
waits could only time out, and a wait that names the wrong kinds, namespace or condition
could not be told from one that is right. This thread plays the controller's visible part and
nothing else: every object of a Config Connector kind that appears in the watched namespace
gets the status Config Connector writes when it is done (condition Ready=True with reason
UpToDate; a ConfigConnectorContext `healthy: true`). It never creates, changes or deletes
anything else, so a missing object still makes the guide's waits fail.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

CONTEXT_KIND = "ConfigConnectorContext"


class FakeConfigConnector:
    """Polls the namespace every `period` seconds until stopped; `marked` lists what it did."""

    def __init__(
        self, api: k8s.ApiClient, namespace: str, crds: list[dict[str, Any]], period: float = 0.5
    ) -> None:
        self._custom = k8s.CustomObjectsApi(api)
        self._namespace = namespace
        self._period = period
        self._kinds = [
            (
                c["spec"]["group"],
                _served(c),
                c["spec"]["names"]["plural"],
                c["spec"]["names"]["kind"],
            )
            for c in crds
            if c["spec"]["scope"] == "Namespaced"
        ]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-config-connector", daemon=True)
        self.marked: set[tuple[str, str]] = set()
        self.errors: list[str] = []

    def __enter__(self) -> FakeConfigConnector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for group, version, plural, kind in self._kinds:
                try:
                    self._mark_all(group, version, plural, kind)
                except ApiException as exc:
                    if exc.status != 404:  # the namespace does not exist yet
                        self.errors.append(f"{kind}: {exc.status} {exc.reason}")
            self._stop.wait(self._period)

    def _mark_all(self, group: str, version: str, plural: str, kind: str) -> None:
        listing = self._custom.list_namespaced_custom_object(
            group, version, self._namespace, plural
        )
        for obj in listing.get("items", []):
            name = obj["metadata"]["name"]
            if (kind, name) in self.marked:
                continue
            self._custom.patch_namespaced_custom_object_status(
                group, version, self._namespace, plural, name, {"status": _status(kind, obj)}
            )
            self.marked.add((kind, name))


def _served(crd: dict[str, Any]) -> str:
    return str(next(v["name"] for v in crd["spec"]["versions"] if v.get("storage")))


def _status(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    generation = obj["metadata"].get("generation", 1)
    if kind == CONTEXT_KIND:
        return {"healthy": True, "observedGeneration": generation}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "observedGeneration": generation,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "UpToDate",
                "message": "The resource is up to date (test stand-in)",
                "lastTransitionTime": now,
            }
        ],
    }
