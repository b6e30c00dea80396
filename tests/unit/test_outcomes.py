"""Exit-handler outcomes come from the Workflow's status tree, never from text orders shape.

The Workflows here are built the way Argo's controller writes them for order-pipeline (node
ids, ``boundaryID``, ``children``, display names with the loop item after the index, a
Retry node over its attempts); tests/cluster checks the same mapping on a Workflow the real
controller ran.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.cli import cli
from dispatcher.operator.outcomes import FAILED, SUCCEEDED, ReportInputError, outcomes
from tests.argo_status import argo_workflow, item


def by_id(wf: dict[str, Any], status: str) -> dict[str, Any]:
    return {o.order_id: o for o in outcomes(wf, status=status)}


def test_params_text_in_a_display_name_cannot_fail_another_order() -> None:
    # issue 9 point 4: "x,order_id:victim-0002" in order 0's params used to fail the victim
    items = [item("att-0001", x="x,order_id:victim-0002"), item("victim-0002")]
    results = by_id(argo_workflow(items, failing={0: "process"}), "Failed")
    assert results["att-0001"].status == FAILED
    assert results["victim-0002"].status == SUCCEEDED and not results["victim-0002"].failed_steps
    assert "victim" not in json.dumps(results["att-0001"].to_json()["failed_steps"])


def test_a_step_message_naming_another_order_stays_with_its_own_order() -> None:
    items = [item("a-1"), item("b-2")]
    wf = argo_workflow(items, failing={0: "validate"})
    for node in wf["status"]["nodes"].values():
        if node.get("type") == "Pod" and node["phase"] == "Failed":
            node["message"] = '{"order_id": "b-2"} order_id:b-2 failed'
    results = by_id(wf, "Failed")
    assert results["a-1"].status == FAILED and results["b-2"].status == SUCCEEDED


def test_failed_order_reports_its_failed_steps_and_ignores_passed_retries() -> None:
    items = [item("o-1"), item("o-2"), item("o-3")]
    wf = argo_workflow(items, failing={1: "process"}, retried={0: "validate"})
    results = by_id(wf, "Failed")
    assert results["o-1"].status == SUCCEEDED and results["o-1"].failed_steps == ()
    failed = results["o-2"]
    assert failed.status == FAILED
    names = [n.display_name for n in failed.failed_steps]
    assert "process" in names and sum(n.startswith("process(") for n in names) == 4
    assert failed.message.startswith("process")
    assert any(n.pod.startswith("bd-small-0123456789abcdef-step-") for n in failed.failed_steps)
    assert results["o-3"].status == SUCCEEDED


def test_orders_that_never_started_get_the_workflow_status() -> None:
    items = [item("o-1"), item("o-2")]
    results = by_id(argo_workflow(items, unstarted=frozenset({1})), "Failed")
    assert results["o-1"].status == SUCCEEDED
    assert results["o-2"].status == "Failed" and "never started" in results["o-2"].message


def test_a_fan_out_node_whose_order_id_input_disagrees_is_not_trusted() -> None:
    items = [item("o-1"), item("o-2")]
    wf = argo_workflow(items, failing={0: "process"})
    for node in wf["status"]["nodes"].values():
        if node.get("templateName") == "order" and node["displayName"].startswith("order(0:"):
            node["inputs"]["parameters"][0]["value"] = "o-2"
    results = by_id(wf, "Failed")
    assert results["o-1"].status == "Failed" and "never started" in results["o-1"].message


@pytest.mark.parametrize(
    "spec",
    [{}, {"arguments": {"parameters": [{"name": "orders", "value": "{"}]}}],
)
def test_a_workflow_without_readable_orders_is_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ReportInputError):
        outcomes({"metadata": {"name": "w"}, "spec": spec}, status="Failed")


ids = st.lists(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789-,:()", min_size=1, max_size=12),
    min_size=1,
    max_size=12,
    unique=True,
)


@settings(max_examples=100, deadline=None)
@given(ids, st.data())
def test_failed_orders_are_exactly_those_whose_own_nodes_failed(
    order_ids: list[str], data: st.DataObject
) -> None:
    failing = data.draw(st.sets(st.sampled_from(range(len(order_ids)))))
    # every order's params name every other order, the way an attacker would
    items = [item(oid, x=",".join(f"order_id:{o}" for o in order_ids)) for oid in order_ids]
    wf = argo_workflow(items, failing={i: "process" for i in failing})
    results = outcomes(wf, status="Failed" if failing else SUCCEEDED)
    assert [r.order_id for r in results] == order_ids
    assert {i for i, r in enumerate(results) if r.status == FAILED} == failing


def test_report_reads_a_workflow_file_and_prints_one_message_per_order(tmp_path: Path) -> None:
    wf = argo_workflow([item("o-1"), item("o-2")], failing={1: "qc"})
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(wf))
    args = ["--log-format", "json", "report", "--workflow", wf["metadata"]["name"]]
    args += ["--status", "Failed", "--workflow-file", str(path), "--topic", "t", "--dry-run"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [m["attributes"]["order_id"] for m in lines] == ["o-1", "o-2"]
    assert [m["attributes"]["status"] for m in lines] == [SUCCEEDED, FAILED]
    args[args.index(wf["metadata"]["name"])] = "someone-else"
    other = CliRunner().invoke(cli, args)
    assert other.exit_code == 2 and "not 'someone-else'" in other.output
