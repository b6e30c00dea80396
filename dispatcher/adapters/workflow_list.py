"""List the dispatcher's Workflow objects in a namespace, page by page.

``limits status`` needs every Workflow the dispatcher created (done ones count toward
``limits.max_workflow_objects``). Pages of 500 keep each response small however large the
backlog has grown; the label selector keeps other tenants' Workflows out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from dispatcher.adapters.kubeclient import api_client, translate
from dispatcher.core.render import API_VERSION, selector

PAGE_SIZE = 500


def managed_workflows(api: Any, *, namespace: str, environment: str) -> Iterator[dict[str, Any]]:
    """Every Workflow of this environment's dispatcher (the service's own label selector)."""
    group, version = API_VERSION.split("/")
    label_selector = selector(environment)
    objects = client.CustomObjectsApi(api)
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"label_selector": label_selector, "limit": PAGE_SIZE}
        if token:
            kwargs["_continue"] = token
        try:
            page = objects.list_namespaced_custom_object(
                group, version, namespace, "workflows", **kwargs
            )
        except ApiException as exc:
            what = f"listing Workflows in {namespace} (is Argo's Workflow CRD installed?)"
            raise translate(exc, what=what) from exc
        yield from page.get("items") or []
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return


def get_workflow(name: str, *, namespace: str, kubeconfig: str | None = None) -> dict[str, Any]:
    """One Workflow object (the exit handler reads its own, status tree included)."""
    group, version = API_VERSION.split("/")
    with api_client(kubeconfig) as api:
        try:
            found: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
                group, version, namespace, "workflows", name
            )
        except ApiException as exc:
            raise translate(exc, what=f"reading Workflow {namespace}/{name}") from exc
    return found
