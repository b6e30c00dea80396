"""A Kubernetes API client for operator commands, and the translation of its errors.

Operator commands run either on a laptop (a kubeconfig) or inside the cluster (``kubectl
exec`` into the dispatcher pod, with its service account). Each command gets its own
``ApiClient`` instead of the SDK's process-wide default, so commands and tests never share
hidden state. API errors become the project's error tree with the server's own reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from dispatcher.errors import DispatchError, TransientError

IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"


class ApiRefused(DispatchError):
    """The API server refused the request (404, 403, 409, 422 ...); retrying will not help."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def api_client(
    kubeconfig: Path | str | None = None,
    *,
    context: str | None = None,
    pool_size: int | None = None,
) -> Any:
    """A client from ``kubeconfig`` (or $KUBECONFIG / ~/.kube/config), in-cluster otherwise.

    ``pool_size`` sizes the connection pool (the service creates Workflows from a thread pool);
    urllib3's own retries are off so that the caller's retry policy alone decides.
    """
    configuration = client.Configuration()
    try:
        if kubeconfig is None and context is None and IN_CLUSTER_ENV in os.environ:
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None,
                context=context,
                client_configuration=configuration,
            )
    except (config.ConfigException, OSError) as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise DispatchError(f"cannot load the Kubernetes configuration ({where}): {exc}") from exc
    if pool_size is not None:
        configuration.connection_pool_maxsize = pool_size
        configuration.retries = False
    return client.ApiClient(configuration)


def translate(exc: ApiException, *, what: str) -> DispatchError:
    """An API error as DispatchError, with the ``Status`` message the server sent."""
    status = int(exc.status or 0)
    detail = server_message(exc)
    if status in (429, 0) or status >= 500:
        return TransientError(f"{what}: the API server answered {status}: {detail}")
    hints = {
        401: "not authenticated (check the kubeconfig's credentials)",
        403: "forbidden (the account lacks RBAC permission)",
        404: "not found",
        409: "changed by someone else in the meantime; run the command again",
    }
    return ApiRefused(f"{what}: {hints.get(status, str(status))}: {detail}", status=status)


def server_message(exc: ApiException) -> str:
    """The ``Status.message`` the API server sent, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return str(exc.reason or "")
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc.reason or "")
