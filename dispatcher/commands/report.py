"""``dispatcher report``: the Workflow's exit handler tells upstream how each order ended.

It runs in the WorkflowTemplate's ``onExit`` step with ``{{workflow.name}}``,
``{{workflow.status}}``, ``{{workflow.failures}}`` and the ``orders`` argument, and publishes
one result message per order. The mapping from failed Argo nodes to orders lives in
:mod:`dispatcher.outcomes`; this module reads the arguments and publishes.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from google.auth.exceptions import GoogleAuthError

from dispatcher.adapters.pubsub_clients import publisher_client
from dispatcher.commands.common import config_option, settings_or_exit
from dispatcher.commands.pubsub_access import explain, qualify
from dispatcher.logging import get_logger
from dispatcher.outcomes import Outcome, ReportInputError, outcomes, parse_failures, parse_orders

RESULTS_TOPIC_ENV = "DISPATCHER_RESULTS_TOPIC"
PUBLISH_TIMEOUT_SECONDS = 60.0

log = get_logger()


@click.command("report")
@click.option("--workflow", required=True, help="The Workflow's name ({{workflow.name}}).")
@click.option(
    "--status", required=True, help="The Workflow's status ({{workflow.status}}): Succeeded, ..."
)
@click.option(
    "--failures",
    default="",
    help="{{workflow.failures}}: JSON list of failed nodes; empty or null when none failed.",
)
@click.option(
    "--orders",
    required=True,
    help="The Workflow's orders argument: JSON list of items with order_id.",
)
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
    status: str,
    failures: str,
    orders: str,
    topic: str,
    project: str | None,
    config_path: Path | None,
    dry_run: bool,
) -> None:
    """Publish one result per order of a finished Workflow (Argo exit handler).

    Message data: {"order_id", "workflow", "status", "failed_steps": [...], "message"};
    attributes: order_id, workflow, status. A failed node whose display name or message names
    an order (Argo puts the loop item, with its order_id, into the display name) marks that
    order Failed; the other orders ran on their own (failFast: false) and Succeeded, unless
    Argo cut the Workflow short (deadline, stop, terminate): then they get the Workflow's
    status. Failed attempts of a retry that later passed are ignored. When no failed node
    names an order, every order gets the Workflow's status. Exits 0 once every message is
    published, 1 when one could not be, 2 when --orders cannot be read.
    """
    try:
        order_ids = parse_orders(orders)
    except ReportInputError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        nodes = parse_failures(failures)
    except ReportInputError as exc:
        # Still answer for every order: with no node to map, each gets the Workflow's status.
        log.warning("failures_unreadable", workflow=workflow, error=str(exc))
        nodes = []
    results = outcomes(workflow=workflow, status=status, failures=nodes, order_ids=order_ids)
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


def _publish(topic: str, results: list[Outcome], *, workflow: str) -> None:
    try:
        publisher = publisher_client()
    except GoogleAuthError as exc:
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
