"""Writing live changes into the dispatcher's ConfigMap: the one path every limits edit takes.

``limits set``, ``pause``, ``resume`` and ``drain`` all change live fields the same way: read
the ConfigMap, edit its YAML keeping comments, validate it as the service will on reload, print
the diff, and patch it (or let the API server dry-run it) only if nobody changed it since.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from dispatcher.adapters.configmap import (
    DEFAULT_KEY,
    DEFAULT_NAME,
    SEMAPHORES_NAME,
    read_config,
    read_semaphores,
    write_config,
)
from dispatcher.adapters.kubeclient import api_client
from dispatcher.commands.common import config_option, settings_or_exit
from dispatcher.commands.output import console
from dispatcher.config import ConfigError, Settings, load_settings, parse_settings
from dispatcher.errors import DispatchError
from dispatcher.logging import get_logger
from dispatcher.operator.limit_edits import LimitChange, LimitEdit, LimitEditError, edit_limits

log = get_logger()

kubeconfig_option = click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, else in-cluster).",
)
context_option = click.option("--context", default=None, help="kubeconfig context to use.")
configmap_option = click.option(
    "--configmap",
    default=DEFAULT_NAME,
    show_default=True,
    help="ConfigMap that holds the dispatcher's configuration.",
)
key_option = click.option(
    "--key", default=DEFAULT_KEY, show_default=True, help="The ConfigMap key with the YAML."
)
namespace_option = click.option(
    "--namespace",
    default=None,
    help="Namespace of the ConfigMap (default: namespace of the configuration).",
)


def patch_options(command: Callable[..., None]) -> Callable[..., None]:
    """Where the ConfigMap is and whether to store the change: every editing command's options."""
    for option in reversed(
        (
            configmap_option,
            key_option,
            namespace_option,
            kubeconfig_option,
            context_option,
            config_option,
            click.option(
                "--dry-run", is_flag=True, help="Server-side dry run: validate and diff only."
            ),
        )
    ):
        command = option(command)
    return command


def apply_changes(
    changes: list[LimitChange],
    *,
    configmap: str,
    key: str,
    namespace: str | None,
    kubeconfig: Path | None,
    context: str | None,
    config_path: Path | None,
    dry_run: bool,
) -> None:
    """Edit, validate, diff and (unless a dry run) patch the ConfigMap: every live change."""
    where = namespace or settings_or_exit(config_path).namespace
    try:
        api = api_client(kubeconfig, context=context)
        current = read_config(api, namespace=where, name=configmap, key=key)
        try:
            edit = edit_limits(current.text, changes, source=current.source)
        except (ConfigError, LimitEditError) as exc:
            raise click.ClickException(f"refused, nothing changed:\n{exc}") from exc
        _print_diff(edit)
        if not edit.rows:
            click.echo("the limits already have these values; nothing to change")
            return
        version = write_config(api, current, edit.text, dry_run=dry_run)
        _warn_about_semaphores(api, edit, namespace=edit.after.namespace, configmap_namespace=where)
    except DispatchError as exc:
        raise click.ClickException(str(exc)) from exc
    changed = {row.field: [row.before, row.after] for row in edit.rows}
    if dry_run:
        click.echo(f"dry run: the API server accepted the change to {current.source}; not stored")
        return
    log.info("limits_changed", configmap=f"{where}/{configmap}", changes=changed)
    click.echo(
        f"patched {current.source} (resourceVersion {current.resource_version} -> {version}); "
        "the dispatcher applies it after the kubelet syncs the file (up to ~1 min) and its "
        f"next check (service.reload_seconds={edit.after.service.reload_seconds:g}s)"
    )


def _warn_about_semaphores(
    api: Any, edit: LimitEdit, *, namespace: str, configmap_namespace: str
) -> None:
    """A class cap above Argo's semaphore for the class is capped by Argo instead."""
    semaphores = read_semaphores(api, namespace=namespace) or read_semaphores(
        api, namespace=configmap_namespace
    )
    changed = {row.field for row in edit.rows}
    for size_class in edit.after.classes:
        limit = semaphores.get(size_class.name)
        if f"classes[{size_class.name}].max_live_workflows" not in changed or limit is None:
            continue
        if size_class.max_live_workflows > limit:
            click.echo(
                f"warning: classes[{size_class.name}].max_live_workflows="
                f"{size_class.max_live_workflows} is above Argo's semaphore {limit} "
                f"(configmap {SEMAPHORES_NAME}): at most {limit} will run at once. Raise it: "
                f"kubectl -n {namespace} patch configmap {SEMAPHORES_NAME} --type merge "
                f'-p \'{{"data":{{"{size_class.name}":"{size_class.max_live_workflows}"}}}}\''
            )


def _print_diff(edit: LimitEdit) -> None:
    table = Table(title="Limit changes")
    for column in ("field", "now", "new"):
        table.add_column(column, justify="left" if column == "field" else "right")
    for row in edit.rows:
        table.add_row(row.field, _number(row.before), _number(row.after))
    console().print(table)


def _number(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return f"{value:,}" if isinstance(value, int) else f"{value:,.12g}"


def live_settings(
    api: Any, *, config_path: Path | None, namespace: str | None, configmap: str, key: str
) -> tuple[Settings, str]:
    """The configuration in force: ``config_path`` if given, else the deployed ConfigMap's."""
    if config_path is not None:
        return settings_or_exit(config_path), str(config_path)
    where = namespace or load_settings(environ={}).namespace
    current = read_config(api, namespace=where, name=configmap, key=key)
    try:
        return parse_settings(current.text, source=current.source, environ={}), current.source
    except ConfigError as exc:
        raise DispatchError(str(exc)) from exc
