"""Read and patch the dispatcher's configuration ConfigMap: the live-limits channel.

The service mounts the ConfigMap and reloads the file when it changes, so a patch here is how
limits change without a restart. The patch carries the ``resourceVersion`` that was read, so a
concurrent edit by someone else fails with 409 instead of being silently overwritten, and a dry
run is a real server-side dry run (admission and validation run, nothing is stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from dispatcher.adapters.kubeclient import translate
from dispatcher.errors import DispatchError

DEFAULT_NAME = "burst-dispatcher-config"
DEFAULT_KEY = "config.yaml"
#: order-pipeline's Workflow-level semaphore per size class: Argo's backstop behind the caps.
SEMAPHORES_NAME = "burst-dispatcher-semaphores"


@dataclass(frozen=True, slots=True)
class ConfigMapText:
    namespace: str
    name: str
    key: str
    text: str
    resource_version: str

    @property
    def source(self) -> str:
        return f"configmap {self.namespace}/{self.name} key {self.key}"


# Names the live edit in the ConfigMap's managedFields: a later server-side apply of an overlay
# that does not carry the same file reports a conflict with this manager.
FIELD_MANAGER = "dispatcher-limits-set"


def read_config(api: Any, *, namespace: str, name: str, key: str = DEFAULT_KEY) -> ConfigMapText:
    try:
        found = client.CoreV1Api(api).read_namespaced_config_map(name, namespace)
    except ApiException as exc:
        raise translate(exc, what=f"reading configmap {namespace}/{name}") from exc
    data = found.data or {}
    if key not in data:
        raise DispatchError(
            f"configmap {namespace}/{name} has no key {key!r} (keys: {sorted(data)})"
        )
    return ConfigMapText(
        namespace=namespace,
        name=name,
        key=key,
        text=data[key],
        resource_version=found.metadata.resource_version,
    )


def write_config(api: Any, current: ConfigMapText, text: str, *, dry_run: bool) -> str:
    """Replace the key's text if nobody changed it since ``current``; the new resourceVersion."""
    body = {
        "metadata": {"resourceVersion": current.resource_version},
        "data": {current.key: text},
    }
    kwargs: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
    try:
        patched = client.CoreV1Api(api).patch_namespaced_config_map(
            current.name, current.namespace, body, field_manager=FIELD_MANAGER, **kwargs
        )
    except ApiException as exc:
        raise translate(exc, what=f"patching configmap {current.namespace}/{current.name}") from exc
    return str(patched.metadata.resource_version)


def read_semaphores(api: Any, *, namespace: str, name: str = SEMAPHORES_NAME) -> dict[str, int]:
    """Argo's semaphore limit per size class; {} when it cannot be read (it is advisory here)."""
    try:
        found = client.CoreV1Api(api).read_namespaced_config_map(name, namespace)
    except ApiException:
        return {}
    limits: dict[str, int] = {}
    for key, value in (found.data or {}).items():
        try:
            limits[str(key)] = int(str(value).strip())
        except ValueError:
            continue
    return limits
