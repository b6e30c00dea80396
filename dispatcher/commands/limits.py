"""``dispatcher limits status|set`` (and ``pause|resume|drain``): caps seen and changed live.

The running dispatcher reads its limits from a mounted ConfigMap and reloads the file when it
changes, so ``set`` edits that ConfigMap (validated exactly as the service validates it, with
a server-side dry run available) and ``status`` counts the Workflows the caps apply to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from dispatcher.adapters.configmap import read_semaphores
from dispatcher.adapters.kubeclient import api_client
from dispatcher.adapters.workflow_list import managed_workflows
from dispatcher.commands.class_states import drain_command, pause_command, resume_command
from dispatcher.commands.common import config_option
from dispatcher.commands.limit_patch import (
    apply_changes,
    configmap_option,
    context_option,
    key_option,
    kubeconfig_option,
    live_settings,
    namespace_option,
    patch_options,
)
from dispatcher.commands.output import console, output_option, print_document
from dispatcher.errors import DispatchError
from dispatcher.operator.census import Census, take_census
from dispatcher.operator.limit_edits import LimitChange


@click.group("limits")
def limits_group() -> None:
    """Show and change the admission limits of the running dispatcher.

    Limits: the global creation rate and burst (limits.workflows_per_second, limits.burst,
    shared by all replicas), the cap on the dispatcher's Workflow objects in the namespace
    (limits.max_workflow_objects) and the cap on live Workflows per size class
    (classes[].max_live_workflows), and whether a class is active, paused or draining
    (classes[].state: pause, drain, resume). The service applies changes to these without a
    restart.
    """


@limits_group.command("status")
@config_option
@kubeconfig_option
@context_option
@namespace_option
@configmap_option
@key_option
@output_option
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Same as -o json.")
def status_command(
    config_path: Path | None,
    kubeconfig: Path | None,
    context: str | None,
    namespace: str | None,
    configmap: str,
    key: str,
    output: str,
    as_json: bool,
) -> None:
    """Live Workflows per size class against their caps, and objects against the total cap.

    Live means no phase yet, Pending or Running (the dispatcher's own rule). The caps come
    from --config when given (or $DISPATCHER_CONFIG), else from the ConfigMap the running
    dispatcher mounts.
    """
    try:
        api = api_client(kubeconfig, context=context)
        settings, source = live_settings(
            api, config_path=config_path, namespace=namespace, configmap=configmap, key=key
        )
        census = take_census(
            managed_workflows(api, namespace=settings.namespace, environment=settings.environment),
            settings,
        )
        semaphores = read_semaphores(api, namespace=settings.namespace)
    except DispatchError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json or output != "table":
        document = {
            "namespace": settings.namespace,
            "source": source,
            **census.to_json(),
            "argo_semaphores": semaphores,
        }
        print_document(document, "json" if as_json else output)
        return
    _print_census(census, namespace=settings.namespace, source=source, semaphores=semaphores)


def _print_census(
    census: Census, *, namespace: str, source: str, semaphores: dict[str, int]
) -> None:
    out = console()
    table = Table(title=f"Workflows in {namespace} (caps from {source})")
    columns = ("class", "live", "cap", "headroom", "new", "pending", "running", "finished")
    for column in (*columns, "argo semaphore"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in census.classes:
        at_cap = row.cap is not None and row.live >= row.cap
        table.add_row(
            row.name if row.cap is not None else f"{row.name} (not configured)",
            f"{row.live:,}",
            "-" if row.cap is None else f"{row.cap:,}",
            "-" if row.headroom is None else f"{row.headroom:,}",
            f"{row.new:,}",
            f"{row.pending:,}",
            f"{row.running:,}",
            f"{row.finished:,}",
            str(semaphores[row.name]) if row.name in semaphores else "-",
            style="bold red" if at_cap else None,
        )
    out.print(table)
    share = census.total / census.max_objects
    out.print(
        f"objects: {census.total:,} of limits.max_workflow_objects {census.max_objects:,} "
        f"({share:.0%}){'  AT THE CAP: nothing is admitted' if share >= 1 else ''}"
    )
    out.print(
        f"creation rate: {census.workflows_per_second:g} Workflows/s, burst {census.burst} "
        "(shared by all replicas)"
    )


@limits_group.command("set")
@click.option("--class", "classes", multiple=True, help="Size class whose --max-live to set.")
@click.option(
    "--max-live",
    "max_live",
    multiple=True,
    type=click.IntRange(min=0),
    help="New classes[].max_live_workflows for the --class given in the same position.",
)
@click.option("--rate", type=float, help="New limits.workflows_per_second.")
@click.option("--burst", type=int, help="New limits.burst.")
@click.option("--max-objects", type=int, help="New limits.max_workflow_objects.")
@patch_options
def set_command(
    classes: tuple[str, ...],
    max_live: tuple[int, ...],
    rate: float | None,
    burst: int | None,
    max_objects: int | None,
    **target: Any,
) -> None:
    """Change limits in the dispatcher's ConfigMap; the running dispatcher picks them up.

    The ConfigMap's config.yaml is edited keeping its comments, validated like the service
    validates it (an invalid value is refused with the field and the reason), shown as a diff
    and patched only if nobody changed it since it was read. The kubelet syncs the mounted file
    within about a minute; the dispatcher then logs limits_reloaded. Commit the same change to
    the overlay: until then a server-side apply of it stops with a conflict on the ConfigMap.

    Example: dispatcher limits set --class small --max-live 80 --rate 10
    """
    if len(classes) != len(max_live):
        raise click.UsageError("give --class and --max-live in pairs: --class NAME --max-live N")
    changes = [
        LimitChange(field="max_live_workflows", value=n, size_class=c)
        for c, n in zip(classes, max_live, strict=True)
    ]
    for name, value in (
        ("workflows_per_second", rate),
        ("burst", burst),
        ("max_workflow_objects", max_objects),
    ):
        if value is not None:
            changes.append(LimitChange(field=name, value=value))
    if not changes:
        raise click.UsageError(
            "nothing to change: give --rate, --burst, --max-objects or --class with --max-live"
        )
    apply_changes(changes, **target)


for _command in (pause_command, resume_command, drain_command):
    limits_group.add_command(_command)
