"""``dispatcher report``: the Workflow's exit handler tells upstream how each order ended.

It runs in the WorkflowTemplate's ``onExit`` step with only ``{{workflow.name}}``,
``{{workflow.namespace}}`` and ``{{workflow.status}}`` on its command line (nothing that grows
with the batch), reads the Workflow object from the API server and publishes one result message
per order. The mapping from the status tree to orders lives in :mod:`dispatcher.operator.outcomes`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from dispatcher.adapters.pubsub_clients import publisher_client
from dispatcher.adapters.pubsub_errors import CREDENTIAL_ERRORS
from dispatcher.adapters.workflow_list import get_workflow
from dispatcher.commands.common import config_option, settings_or_exit
from dispatcher.commands.pubsub_access import explain, qualify
from dispatcher.errors import DispatchError
from dispatcher.logging import get_logger
from dispatcher.operator.outcomes import Outcome, ReportInputError, outcomes

RESULTS_TOPIC_ENV = "DISPATCHER_RESULTS_TOPIC"
PUBLISH_TIMEOUT_SECONDS = 60.0
SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

log = get_logger()


@click.command("report")
@click.option("--workflow", required=True, help="The Workflow's name ({{workflow.name}}).")
@click.option(
    "--namespace",
    default=None,
    help="The Workflow's namespace ({{workflow.namespace}}); default: the pod's own.",
)
@click.option(
    "--status", required=True, help="The Workflow's status ({{workflow.status}}): Succeeded, ..."
)
@click.option(
    "--workflow-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Read the Workflow object (JSON or YAML) from this file instead of the API server.",
)
@click.option("--kubeconfig", default=None, help="Kubeconfig (default: in-cluster, $KUBECONFIG).")
@click.option(
    "--topic",
    required=True,
    envvar=RESULTS_TOPIC_ENV,
    help=f"Results topic (name or full path; ${RESULTS_TOPIC_ENV}).",
)
@click.option(
    "--project",
    default=None,
    envvar="GOOGLE_CLOUD_PROJECT",
    help="Project for a short topic name ($GOOGLE_CLOUD_PROJECT, else pubsub.project).",
)
@config_option
@click.option("--dry-run", is_flag=True, help="Print the messages as JSON lines; publish nothing.")
def report_command(
    workflow: str,
    namespace: str | None,
    status: str,
    workflow_file: Path | None,
    kubeconfig: str | None,
    topic: str,
    project: str | None,
    config_path: Path | None,
    dry_run: bool,
) -> None:
    """Publish one result per order of a finished Workflow (Argo exit handler).

    Message data: {"order_id", "workflow", "status", "failed_steps": [...], "message"};
    attributes: order_id, workflow, status. Each order's fan-out node in the Workflow's status
    tree decides: Succeeded, or Failed with the failed steps under it; an order whose node
    never finished gets the Workflow's status. Nothing that order data or a step writes (display
    names, messages) decides which order a node belongs to. Exits 0 once every message is
    published, 1 when one could not be, 2 when the Workflow cannot be read.
    """
    doc = _load(workflow_file) if workflow_file else _fetch(workflow, namespace, kubeconfig)
    name = str((doc.get("metadata") or {}).get("name") or "")
    if name != workflow:
        raise click.UsageError(f"the Workflow read is {name!r}, not {workflow!r}")
    try:
        results = outcomes(doc, status=status)
    except ReportInputError as exc:
        raise click.UsageError(str(exc)) from exc
    if dry_run:
        for result in results:
            click.echo(
                json.dumps(
                    {"attributes": result.attributes(), "data": result.to_json()},
                    ensure_ascii=False,
                )
            )
        return
    if project is None and not topic.startswith("projects/"):
        project = settings_or_exit(config_path).pubsub.project
    path = qualify(topic, kind="topics", project=project or "")
    _publish(path, results, workflow=workflow)


def _load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise click.UsageError(f"{path} does not hold a Workflow object")
    return doc


def _fetch(name: str, namespace: str | None, kubeconfig: str | None) -> dict[str, Any]:
    if namespace is None:
        try:
            namespace = SA_NAMESPACE_FILE.read_text().strip()
        except OSError as exc:
            raise click.UsageError(f"--namespace is needed outside a pod: {exc}") from exc
    try:
        return get_workflow(name, namespace=namespace, kubeconfig=kubeconfig)
    except DispatchError as exc:
        raise click.ClickException(str(exc)) from exc


def _publish(topic: str, results: list[Outcome], *, workflow: str) -> None:
    try:
        publisher = publisher_client()
    except CREDENTIAL_ERRORS as exc:
        raise click.ClickException(explain(exc)) from exc
    try:
        futures = [
            (
                result,
                publisher.publish(
                    topic,
                    json.dumps(result.to_json(), ensure_ascii=False).encode("utf-8"),
                    **result.attributes(),
                ),
            )
            for result in results
        ]
        errors: list[str] = []
        for result, future in futures:
            try:
                message_id = future.result(timeout=PUBLISH_TIMEOUT_SECONDS)
            except Exception as exc:  # noqa: BLE001 - reported below, the step then fails
                errors.append(f"{result.order_id}: {exc}")
                continue
            log.info(
                "order_result_published",
                order_id=result.order_id,
                workflow=workflow,
                status=result.status,
                message_id=message_id,
            )
    finally:
        publisher.stop()
    if errors:
        raise click.ClickException(
            f"{len(errors)} of {len(results)} results not published to {topic}: {errors[0]}"
        )
    statuses: dict[str, int] = {}
    for result in results:
        statuses[result.status] = statuses.get(result.status, 0) + 1
    summary = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
    click.echo(f"published {len(results)} results for {workflow} to {topic}: {summary}")
