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

from dispatcher.core.order import Reason
from dispatcher.errors import DispatchError, PermanentError, TransientError

IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"


#: Statuses worth retrying; every other answer is definite (docs/architecture.md "Errors").
TRANSIENT_STATUS = frozenset({0, 408, 425, 429, 500, 502, 503, 504})
HINTS = {
    401: "not authenticated (check the kubeconfig's credentials)",
    403: "forbidden (the account lacks RBAC permission)",
    404: "not found",
    409: "changed by someone else in the meantime; run the command again",
}


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


def translate(exc: ApiException, *, what: str | None = None) -> DispatchError:
    """The one map from an API answer to the error tree, keeping status, ``Retry-After`` and
    the server's own message (``what`` prefixes it, with a hint, for operator commands)."""
    status = int(exc.status or 0)
    detail = server_message(exc)
    if what is None:
        message = f"HTTP {status}: {detail}"
    else:
        message = f"{what}: {HINTS.get(status, f'the API server answered {status}')}: {detail}"
    if status in TRANSIENT_STATUS:
        return TransientError(message, retry_after=retry_after(exc), status=status)
    return PermanentError(message, reason=Reason.REJECTED_BY_API, status=status)


def retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def server_message(exc: ApiException) -> str:
    """The ``Status.message`` the API server sent, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return str(exc.reason or "")
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc.reason or "")
