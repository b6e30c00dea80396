"""``dispatcher status``: per class, what is held, live, capped and created, and why it waits.

It reads three things an operator may read (RBAC in k8s/base/rbac.yaml): the ConfigMap (the
caps in force), the environment's Workflows (counted by the dispatcher's own rule, as
``limits status`` counts them) and each replica's ``/status`` through the API server's pod
proxy (no port to open). ``--watch`` redraws the table in place until Ctrl-C.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dispatcher.adapters.backlog import Backlog, BacklogUnavailable, read_backlog
from dispatcher.adapters.kubeclient import api_client
from dispatcher.adapters.replica_status import replica_reports
from dispatcher.adapters.workflow_list import managed_workflows
from dispatcher.commands.common import config_option
from dispatcher.commands.limit_patch import (
    configmap_option,
    context_option,
    key_option,
    kubeconfig_option,
    live_settings,
    namespace_option,
)
from dispatcher.commands.output import console, output_option, print_document
from dispatcher.config import Settings
from dispatcher.errors import DispatchError
from dispatcher.operator.census import take_census
from dispatcher.operator.status import Status, backlog_subscriptions, summarize


@click.command("status")
@config_option
@kubeconfig_option
@context_option
@namespace_option
@configmap_option
@key_option
@output_option
@click.option("--watch", is_flag=True, help="Redraw in place every --interval seconds.")
@click.option("--interval", type=click.FloatRange(min=0.5), default=2.0, show_default=True)
def status_command(
    config_path: Path | None,
    kubeconfig: Path | None,
    context: str | None,
    namespace: str | None,
    configmap: str,
    key: str,
    output: str,
    watch: bool,
    interval: float,
) -> None:
    """Each size class: orders waiting in Pub/Sub and the oldest one's age (Cloud Monitoring,
    where it can be read), orders the replicas hold, creates in flight, live Workflows against
    the cap, Workflows created per minute, and why the class is not moving (its cap, the
    rate, the object cap, paused, a replica joining, or no orders). Exit 1 when the cluster
    cannot be read."""

    def take() -> Status:
        api = api_client(kubeconfig, context=context)
        try:
            settings, _ = live_settings(
                api, config_path=config_path, namespace=namespace, configmap=configmap, key=key
            )
            census = take_census(
                managed_workflows(
                    api, namespace=settings.namespace, environment=settings.environment
                ),
                settings,
            )
            reports = list(
                replica_reports(api, namespace=settings.namespace, port=settings.service.http_port)
            )
        finally:
            api.close()
        return summarize(settings, census, reports, pubsub_backlog(settings))

    try:
        if not watch:
            _emit(take(), output)
            return
        if output != "table":
            raise click.UsageError("--watch redraws a table: use it with -o table")
        with Live(render(take()), console=console(), auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(render(take()), refresh=True)
    except DispatchError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        return


def pubsub_backlog(settings: Settings) -> dict[str, Backlog] | str:
    """Figures per subscription id from Cloud Monitoring, or why there are none."""
    try:
        return read_backlog(settings.pubsub.project, backlog_subscriptions(settings).values())
    except BacklogUnavailable as exc:
        return str(exc)


def _emit(status: Status, output: str) -> None:
    if output == "table":
        console().print(render(status))
    else:
        print_document(status.to_json(), output)


def render(status: Status) -> Any:
    table = Table(title=f"burst-dispatcher {status.environment} in {status.namespace}")
    per_class = any(row.waiting is not None for row in status.classes)
    columns = ("class", *(("waiting", "oldest") if per_class else ()), "held", "in flight")
    for column in (*columns, "live / cap", "created/min", "why"):
        table.add_column(column, justify="left" if column in ("class", "why") else "right")
    for row in status.classes:
        cap = "-" if row.cap is None else f"{row.cap:,}"
        waiting = (_count(row.waiting), _age(row.waiting)) if per_class else ()
        table.add_row(
            row.name,
            *waiting,
            f"{row.held:,}",
            f"{row.in_flight:,}",
            f"{row.live:,} / {cap}",
            f"{row.created_per_minute:g}",
            row.why,
        )
    reachable = sum(1 for r in status.replicas if r.status is not None)
    lines = [
        f"replicas: {reachable} of {len(status.replicas)} reachable"
        + "".join(f"; {r.pod}: {r.error}" for r in status.replicas if r.status is None),
        f"Workflow objects: {status.objects:,} of {status.max_objects:,}; "
        f"dead letters/min: {status.dead_letters_per_minute:g}",
        "orders waiting in Pub/Sub: "
        + (
            f"unknown ({status.backlog_error})"
            if status.backlog_error
            else f"{_count(status.intake)} at intake, the oldest {_age(status.intake)}"
        ),
    ]
    return Group(table, Text("\n".join(lines)))


def _count(backlog: Backlog | None) -> str:
    return "-" if backlog is None or backlog.waiting is None else f"{backlog.waiting:,}"


def _age(backlog: Backlog | None) -> str:
    if backlog is None or backlog.oldest_seconds is None:
        return "-"
    seconds = backlog.oldest_seconds
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"
