"""The usual choice, run beside the dispatcher: one Workflow per order, all on the on-demand pool.

Why: the swarm benchmark's targets are ratios against what teams build without the dispatcher,
Argo Events' Pub/Sub trigger: a subscription whose every message becomes one Workflow, created
before the ack, on nodes nobody sized for the order. This consumer does that on its own topic
and subscription of the same emulator, with the dispatcher's intake and renderer (so parsing is
not what differs), its own environment label (so neither side counts the other's Workflows) and
its own copy of the shipped WorkflowTemplate without the per-class semaphore (Argo Events has
none); every spot class is moved to the on-demand pool by the template's node-pool parameters
(a class already on on-demand machines keeps its pool).
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from dispatcher.adapters.pubsub_clients import subscriber_client
from dispatcher.core.batching import Batch
from dispatcher.core.intake import Intake, Refused
from dispatcher.core.render import render_workflow
from dispatcher.core.settings import Settings

ONDEMAND = "ondemand"
TEMPLATE = "order-pipeline-naive"
NAMESPACE = "burst-naive"
ARGO = ("argoproj.io", "v1alpha1")


def naive_settings(settings: Settings, *, environment: str) -> Settings:
    """The dispatcher's classes on on-demand machines and the naive template: spot classes move
    to the on-demand pool; a class already on on-demand keeps its pool (prod's `large` needs
    n2-highmem-16, which the on-demand pool's n2-standard-8 cannot hold)."""
    classes = [
        c.model_copy(
            update={
                "node_pool": ONDEMAND if c.spot else c.node_pool,
                "fallback_node_pool": ONDEMAND if c.spot else c.fallback_node_pool,
                "spot": False,
                "template": TEMPLATE,
            }
        )
        for c in settings.classes
    ]
    return settings.model_copy(
        update={"environment": environment, "classes": classes, "namespace": NAMESPACE}
    )


def _create(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except ApiException as exc:
        if exc.status != 409:
            raise


def ensure_template(api: k8s.ApiClient, namespace: str, *, shipped: str) -> None:
    """The naive namespace with the dispatcher namespace's ServiceAccounts (the template's pods
    run as them), and the shipped template under another name, without `synchronization`."""
    core, custom = k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)
    _create(core.create_namespace, {"metadata": {"name": NAMESPACE}})
    for account in core.list_namespaced_service_account(namespace).items:
        body = {"metadata": {"name": account.metadata.name}}
        _create(core.create_namespaced_service_account, NAMESPACE, body)
    body = custom.get_namespaced_custom_object(*ARGO, namespace, "workflowtemplates", shipped)
    spec = copy.deepcopy(body["spec"])
    spec.pop("synchronization", None)
    naive = {
        "apiVersion": body["apiVersion"],
        "kind": "WorkflowTemplate",
        "metadata": {"name": TEMPLATE, "namespace": NAMESPACE},
        "spec": spec,
    }
    try:
        custom.create_namespaced_custom_object(*ARGO, NAMESPACE, "workflowtemplates", naive)
    except ApiException as exc:
        if exc.status != 409:
            raise
        custom.patch_namespaced_custom_object(
            *ARGO, NAMESPACE, "workflowtemplates", TEMPLATE, {"spec": spec}
        )


class NaiveConsumer:
    """Streaming pull on ``subscription``; each message: validate, create its Workflow, ack."""

    def __init__(self, api: k8s.ApiClient, *, settings: Settings, subscription: str) -> None:
        self._custom = k8s.CustomObjectsApi(api)
        self._settings = settings
        self._intake = Intake(settings)
        self._subscription = subscription
        self._subscriber = subscriber_client()
        self._future: Any = None
        self._lock = threading.Lock()
        self.created = 0
        self.refused = 0
        self.create_errors = 0

    def _callback(self, message: Any) -> None:
        now = time.monotonic()
        ticket = self._intake(message.data, message.attributes, receipt=message, now=now)
        if isinstance(ticket, Refused):
            with self._lock:
                self.refused += 1
            message.ack()  # Argo Events drops what its filter refuses
            return
        body = render_workflow(
            Batch(ticket.size_class, (ticket,), now),
            settings=self._settings,
            message_ids=[str(message.message_id)],
        )
        try:
            self._custom.create_namespaced_custom_object(
                *ARGO, self._settings.namespace, "workflows", body
            )
        except ApiException as exc:
            if exc.status != 409:  # 409: a redelivery of an order whose Workflow exists
                with self._lock:
                    self.create_errors += 1
                message.nack()
                return
        with self._lock:
            self.created += 1
        message.ack()

    def start(self) -> None:
        from google.cloud import pubsub_v1

        self._future = self._subscriber.subscribe(
            self._subscription,
            self._callback,
            flow_control=pubsub_v1.types.FlowControl(max_messages=100),
        )

    def stop(self) -> None:
        if self._future is not None:
            self._future.cancel()
            self._future = None
        self._subscriber.close()
