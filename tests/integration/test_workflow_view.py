"""The Workflow view against the real API server: what it counts must be what the server holds.

The object-cap test once failed in about half its runs: the engine reports a create to the view
only after the ledger stored the create's order ids, which can be after the watch has already
delivered the Workflow's DELETED. These tests replay that order of events on purpose, and
check the guard that relists when the view counts a create the watch never confirms.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dispatcher.adapters.cluster_view import WorkflowView
from dispatcher.core.render import (
    LABEL_ENVIRONMENT,
)
from tests.integration.cluster_support import (
    create_workflow,
    delete_workflows,
    ensure_test_template,
)
from tests.polling import poll

pytestmark = [pytest.mark.cluster]


@pytest.fixture
def view_env(k8s_cluster: Any) -> Iterator[tuple[Any, str, str]]:
    """An API client, the namespace and an environment label of this test's own."""
    environment = f"v{uuid.uuid4().hex[:10]}"
    with k8s_cluster.api_client() as api:
        ensure_test_template(api, k8s_cluster.namespace)
        yield api, k8s_cluster.namespace, environment
        delete_workflows(api, k8s_cluster.namespace, f"{LABEL_ENVIRONMENT}={environment}")


def make(api: Any, namespace: str, environment: str, order_id: str) -> str:
    name = f"view-{environment}-{order_id}"
    return create_workflow(api, namespace, name=name, environment=environment, order_ids=[order_id])


def test_a_create_reported_after_its_deletion_is_not_counted(
    view_env: tuple[Any, str, str],
) -> None:
    api, namespace, environment = view_env
    view = WorkflowView(api, namespace=namespace, environment=environment, identity="me")
    view.start()
    try:
        name = make(api, namespace, environment, "late")
        poll(lambda: view.objects_total() == 1, 30, "the watch's ADDED")
        delete_workflows(api, namespace, f"{LABEL_ENVIRONMENT}={environment}")
        poll(lambda: view.objects_total() == 0, 30, "the watch's DELETED")
        # The engine's report of the create, late (after the ledger write): nothing to count.
        view.record_created(name, "small", ("late",))
        assert view.objects_total() == 0
        assert view.live_by_replica("small") == {}
        assert not view.contains("late")
    finally:
        view.stop()


def test_a_create_the_watch_never_confirms_is_dropped_by_a_relist(
    view_env: tuple[Any, str, str],
) -> None:
    api, namespace, environment = view_env
    view = WorkflowView(
        api,
        namespace=namespace,
        environment=environment,
        identity="me",
        watch_seconds=1,
        confirm_seconds=1.0,
    )
    view.start()
    try:
        real = make(api, namespace, environment, "real")
        poll(lambda: view.contains("real"), 30, "the watch's ADDED")
        relists = view.relists
        # Counted here, never on the server (say a 409 for a Workflow deleted just after).
        view.record_created(f"{real}-phantom", "small", ("phantom",))
        assert view.objects_total() == 2
        poll(lambda: view.objects_total() == 1, 30, "the guard to relist")
        assert view.relists > relists
        assert view.contains("real") and not view.contains("phantom")
    finally:
        view.stop()
