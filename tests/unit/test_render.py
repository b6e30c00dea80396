"""Workflow bodies: template reference and arguments only, deterministic valid names."""

from __future__ import annotations

import json
import re

import yaml
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.core.batching import Batch
from dispatcher.core.classify import Classifier, Ticket
from dispatcher.core.order_data import order_id_problem
from dispatcher.core.render import render_workflow, workflow_name
from tests.unit.golden import check_golden
from tests.unit.helpers import order, settings

CFG = settings()
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def batch_of(*orders: tuple[str, int, dict[str, bool]]) -> Batch[str]:
    classifier = Classifier(CFG)
    tickets = []
    for order_id, size, steps in orders:
        t = classifier.ticket(order(order_id, size, steps=steps), now=0.0, receipt=order_id)
        assert isinstance(t, Ticket)
        tickets.append(t)
    return Batch(tickets[0].size_class, tuple(tickets), 0.0)


def test_golden_small_batch() -> None:
    batch = batch_of(("ord-1", 1024, {}), ("ord-2", 2048, {"enrich": True}), ("Ord_7.ÄÖ-ü", 0, {}))
    body = render_workflow(batch, settings=CFG, message_ids=["101", "102", "103"])
    check_golden("workflow-small.yaml", yaml.safe_dump(body, sort_keys=False, allow_unicode=True))


def test_golden_large_order() -> None:
    body = render_workflow(batch_of(("big-1", 50 * 1024**3, {"qc": False})), settings=CFG)
    check_golden("workflow-large.yaml", yaml.safe_dump(body, sort_keys=False, allow_unicode=True))


def test_spec_is_template_ref_and_arguments_only() -> None:
    body = render_workflow(batch_of(("a", 1, {})), settings=CFG)
    assert set(body["spec"]) == {"workflowTemplateRef", "arguments"}
    params = {p["name"]: p["value"] for p in body["spec"]["arguments"]["parameters"]}
    assert all(isinstance(v, str) for v in params.values())
    [item] = json.loads(params["orders"])
    assert item["step_enrich"] is False and item["step_qc"] is True
    assert params["node-pool"] == "small-spot" and params["spot"] == "true"


def test_name_is_independent_of_order_in_batch() -> None:
    assert workflow_name("bd", "small", ("a", "b")) == workflow_name("bd", "small", ("b", "a"))
    assert workflow_name("bd", "small", ("a",)) != workflow_name("bd", "medium", ("a",))


VALID_IDS = st.text(min_size=1, max_size=128).filter(lambda s: order_id_problem(s) is None)


@given(st.lists(VALID_IDS, min_size=1, max_size=20, unique=True))
def test_any_order_ids_give_valid_names_and_labels(order_ids: list[str]) -> None:
    tickets = tuple(
        Ticket(order(oid, 1), "small", json.dumps({"order_id": oid}), 0.0, [oid])
        for oid in order_ids
    )
    body = render_workflow(Batch("small", tickets, 0.0), settings=CFG, message_ids=order_ids)
    name = body["metadata"]["name"]
    assert DNS_LABEL.match(name) and len(name) <= 63
    assert (
        name
        == render_workflow(Batch("small", tickets[::-1], 0.0), settings=CFG)["metadata"]["name"]
    )
    for value in body["metadata"]["labels"].values():
        assert LABEL_VALUE.match(value) and len(value) <= 63
        assert all(oid != value for oid in order_ids if not LABEL_VALUE.match(oid))
    assert json.loads(body["metadata"]["annotations"]["burst-dispatcher.io/order-ids"]) == order_ids
