"""The batcher's size estimate against what the real API server stores.

Why: the ``orders`` argument is JSON text inside a JSON string, and the API server (Go's
encoding/json) escapes it again: quotes and backslashes double, ``<``, ``>``, ``&`` take six
bytes. An estimate of our own encoding let a quote-heavy batch weigh twice its estimate (issue
9). Each batch here is created with a server-side dry run (admission and defaulting in full,
nothing stored) and the server's JSON of the object is measured: it must never exceed the
estimate, and the estimate must never exceed ``orders.max_workflow_object_bytes``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from dispatcher.core.batching import Batch, Batcher
from dispatcher.core.classify import Classifier, Ticket
from dispatcher.core.order import Order, OrderInput
from dispatcher.core.render import render_workflow
from tests.cluster.plugin import K8sCluster
from tests.unit.helpers import settings as make_settings

pytestmark = pytest.mark.cluster

PARAMS = {
    "quotes": {"q": '"' * 3000, "b": "\\" * 1000},
    "html": {"h": "<&>" * 1200},
    "unicode": {"u": "注文ß🙂\u2028" * 600, "k": ["é" * 50] * 20},
    "plain": {"p": "x" * 4000},
}


@pytest.fixture(scope="module")
def custom(k8s_cluster: K8sCluster) -> Iterator[tuple[k8s.CustomObjectsApi, str]]:
    with k8s_cluster.api_client() as api:
        yield k8s.CustomObjectsApi(api), k8s_cluster.namespace


def stored_bytes(custom: k8s.CustomObjectsApi, ns: str, body: dict[str, Any]) -> int:
    response = custom.create_namespaced_custom_object(
        "argoproj.io", "v1alpha1", ns, "workflows", body, dry_run="All", _preload_content=False
    )
    raw: bytes = response.data
    assert json.loads(raw)["metadata"]["name"] == body["metadata"]["name"]
    return len(raw)


@pytest.mark.parametrize("kind", sorted(PARAMS))
def test_stored_workflow_never_exceeds_the_estimate_or_the_limit(
    custom: tuple[k8s.CustomObjectsApi, str], kind: str
) -> None:
    api, ns = custom
    cfg = make_settings()
    cfg = cfg.model_copy(update={"namespace": ns})
    limit = cfg.orders.max_workflow_object_bytes
    classifier, batcher = Classifier(cfg), Batcher[int](cfg)
    batches: list[Batch[int]] = []
    for index in range(40):
        order = Order(
            order_id=f"wire-{kind}-{index}",
            input=OrderInput(uri=f"gs://in/{index}", size_bytes=10),
            params=PARAMS[kind],
        )
        ticket = classifier.ticket(order, now=0.0, receipt=index)
        assert isinstance(ticket, Ticket), ticket
        batches.extend(batcher.add(ticket, 0.0))
    batches.extend(batcher.flush())
    assert len(batches) >= 2  # the byte bound, not the count, closed them
    for batch in batches:
        body = render_workflow(batch, settings=cfg, message_ids=["1" * 20] * len(batch.tickets))
        measured = stored_bytes(api, ns, body)
        assert measured <= batch.object_bytes <= limit, (kind, measured, batch.object_bytes)
        # and not wastefully loose: within the fixed overheads of the estimate
        assert batch.object_bytes - measured < 2048 + 32 * len(batch.tickets), measured
