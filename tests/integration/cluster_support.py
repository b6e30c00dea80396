"""Shared pieces for dispatcher tests on the real test cluster.

A light WorkflowTemplate (one container step, no fan-out, no outputs) keeps the Argo
controller's work per Workflow small on two cores; it declares every argument the dispatcher
sends and schedules onto the kwok node pool the class names. A watch records what the API
server says about the dispatcher's Workflows, so limits are judged from the server's history,
not from the dispatcher's own counters.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from dispatcher.core.render import WORKFLOW_PARAMETERS

TEMPLATE = "bd-test-noop"
DONE = {"Succeeded", "Failed", "Error"}


def ensure_test_template(api: k8s.ApiClient, namespace: str) -> None:
    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": TEMPLATE, "namespace": namespace},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": p, "value": ""} for p in WORKFLOW_PARAMETERS]},
            "podGC": {"strategy": "OnPodCompletion"},
            "templates": [
                {
                    "name": "main",
                    "nodeSelector": {
                        "cloud.google.com/gke-nodepool": "{{workflow.parameters.node-pool}}"
                    },
                    "tolerations": [
                        {
                            "key": "cloud.google.com/gke-spot",
                            "operator": "Equal",
                            "value": "true",
                            "effect": "NoSchedule",
                        },
                        {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"},
                    ],
                    "container": {"image": "busybox:1.36", "command": ["true"]},
                }
            ],
        },
    }
    api_objects = k8s.CustomObjectsApi(api)
    try:
        api_objects.create_namespaced_custom_object(
            "argoproj.io", "v1alpha1", namespace, "workflowtemplates", body
        )
    except ApiException as exc:
        if exc.status != 409:
            raise


def create_workflow(
    api: k8s.ApiClient,
    namespace: str,
    *,
    name: str,
    environment: str,
    order_ids: list[str],
    replica: str | None = None,
) -> str:
    """A Workflow as another dispatcher would have made it (the test template, class small)."""
    labels = {
        "burst-dispatcher.io/environment": environment,
        "burst-dispatcher.io/size-class": "small",
        "app.kubernetes.io/managed-by": "burst-dispatcher",
    }
    if replica is not None:
        labels["burst-dispatcher.io/replica"] = replica
    k8s.CustomObjectsApi(api).create_namespaced_custom_object(
        "argoproj.io",
        "v1alpha1",
        namespace,
        "workflows",
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {"burst-dispatcher.io/order-ids": json.dumps(order_ids)},
            },
            "spec": {"workflowTemplateRef": {"name": TEMPLATE}},
        },
    )
    return name


def delete_workflows(api: k8s.ApiClient, namespace: str, selector: str) -> None:
    k8s.CustomObjectsApi(api).delete_collection_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "workflows", label_selector=selector
    )


class History:
    """Every watch event on the dispatcher's Workflows, with the peak of live ones per class."""

    def __init__(self, api: k8s.ApiClient, namespace: str, selector: str) -> None:
        self._api = k8s.CustomObjectsApi(api)
        self._namespace = namespace
        self._selector = selector
        self.phases: dict[str, str] = {}
        self.classes: dict[str, str] = {}
        self.bodies: dict[str, dict[str, Any]] = {}
        self.peak_live: Counter[str] = Counter()
        self.peak_total = 0
        self.peak_objects = 0  # Workflows that exist, whatever their phase (the object cap)
        self.events = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> History:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("history watch did not start")
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()

    def _run(self) -> None:
        version = self._list()
        self._ready.set()
        while not self._stop.is_set():
            try:
                version = self._follow(version)
            except ApiException as exc:
                if exc.status != 410:
                    raise
                version = self._list()  # expired: list again (events in between are in it)

    def _list(self) -> str:
        listing = self._api.list_namespaced_custom_object(
            "argoproj.io", "v1alpha1", self._namespace, "workflows", label_selector=self._selector
        )
        for obj in listing["items"]:
            self._record("ADDED", obj)
        return str(listing["metadata"]["resourceVersion"])

    def _follow(self, version: str) -> str:
        stream = k8s_watch.Watch().stream(
            self._api.list_namespaced_custom_object,
            "argoproj.io",
            "v1alpha1",
            self._namespace,
            "workflows",
            label_selector=self._selector,
            resource_version=version,
            timeout_seconds=30,
        )
        for event in stream:
            obj = event["object"]
            if event["type"] == "ERROR":
                raise ApiException(status=obj.get("code", 500), reason=str(obj))
            version = obj["metadata"]["resourceVersion"]
            self._record(event["type"], obj)
            if self._stop.is_set():
                break
        return version

    def _record(self, kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        self.events += 1
        if kind == "DELETED":
            self.phases[name] = "Deleted"
        else:
            self.phases[name] = (obj.get("status") or {}).get("phase") or ""
            self.classes[name] = obj["metadata"]["labels"]["burst-dispatcher.io/size-class"]
            self.bodies[name] = obj
        live = Counter(
            self.classes[n] for n, phase in self.phases.items() if phase not in DONE | {"Deleted"}
        )
        for size_class, count in live.items():
            self.peak_live[size_class] = max(self.peak_live[size_class], count)
        self.peak_total = max(self.peak_total, sum(live.values()))
        existing = sum(1 for phase in self.phases.values() if phase != "Deleted")
        self.peak_objects = max(self.peak_objects, existing)

    def order_ids(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for body in list(self.bodies.values()):
            annotation = body["metadata"]["annotations"]["burst-dispatcher.io/order-ids"]
            counts.update(json.loads(annotation))
        return counts

    def wait_for_orders(self, expected: set[str], timeout: float, describe: Any = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if set(self.order_ids()) >= expected:
                return
            time.sleep(0.2)
        missing = expected - set(self.order_ids())
        state = describe() if describe is not None else ""
        raise AssertionError(
            f"{len(missing)} orders never reached a Workflow, e.g. {sorted(missing)[:5]}; "
            f"history watch alive: {self._thread.is_alive()}; {state}"
        )


@contextlib.contextmanager
def scratch_environment(
    api: k8s.ApiClient, namespace: str, prefix: str, selector: Callable[[str], str]
) -> Iterator[str]:
    """A fresh environment name; its ConfigMaps (by ``selector(name)``) are deleted after."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        k8s.CoreV1Api(api).delete_collection_namespaced_config_map(
            namespace, label_selector=selector(name)
        )


@pytest.fixture(name="api")
def kube_api(k8s_cluster: Any) -> Iterator[k8s.ApiClient]:
    """An admin API client of the test cluster, closed after the test."""
    with k8s_cluster.api_client() as client:
        yield client
