"""Creating Workflows through the Kubernetes API, with the error tree and retry policy.

Status codes map onto the one error tree: 409 means the work already exists (success);
429, 5xx, timeouts and dropped connections are transient and retried with exponential
backoff, jitter and the server's ``Retry-After``; 400/403/404/422 are permanent and carry
the API server's own message so the dead letter says what was wrong.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import tenacity
import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from dispatcher.adapters.kubeclient import translate as translate_api_error
from dispatcher.adapters.sinks import CreateResult
from dispatcher.core.order import Reason
from dispatcher.errors import PermanentError, TransientError

GROUP = "argoproj.io"
VERSION = "v1alpha1"
REQUEST_TIMEOUT = (5.0, 20.0)  # connect, read
TEMPLATE_CACHE_SECONDS = 30.0


def translate(exc: BaseException) -> BaseException:
    """Map an SDK exception onto the error tree (the caller re-raises ``from exc``)."""
    if isinstance(exc, ApiException):
        return translate_api_error(exc)
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError | OSError):
        return TransientError(f"{type(exc).__name__}: {exc}")
    return exc


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Run SDK calls so that their failures surface as the project's error tree."""
    try:
        yield
    except ApiException as exc:
        raise translate(exc) from exc
    except Exception as exc:
        mapped = translate(exc)
        if mapped is exc:
            raise
        raise mapped from exc


class _WaitWithRetryAfter(tenacity.wait.wait_base):
    """Exponential backoff with jitter, never shorter than the server's Retry-After."""

    def __init__(self, base: tenacity.wait.wait_base) -> None:
        self._base = base

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        computed = float(self._base(retry_state))
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        hinted = getattr(error, "retry_after", None) or 0.0
        return max(computed, min(float(hinted), 60.0))


def create_retry_policy(
    *,
    attempts: int = 6,
    max_seconds: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tenacity.Retrying:
    """The named policy for Workflow creates: transient errors only, bounded in time."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientError),
        wait=_WaitWithRetryAfter(tenacity.wait_exponential_jitter(multiplier=0.2, max=10.0)),
        stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_after_delay(max_seconds),
        sleep=sleep,
        reraise=True,
    )


class KubeWorkflowSink:
    """Creates Workflows in one namespace; checks the referenced template exists first."""

    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        namespace: str,
        retry: tenacity.Retrying | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._objects = k8s.CustomObjectsApi(api)
        self._namespace = namespace
        self._retry = retry or create_retry_policy()
        self._clock = clock
        self._templates: dict[str, float] = {}
        self._lock = threading.Lock()
        self.api_writes = 0

    def create(self, body: dict[str, Any]) -> CreateResult:
        template = body["spec"]["workflowTemplateRef"]["name"]
        self._retry(self._require_template, template)
        return self._retry(self._create_once, body)

    def _create_once(self, body: dict[str, Any]) -> CreateResult:
        with self._lock:
            self.api_writes += 1
        try:
            with translated_errors():
                self._objects.create_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self._namespace,
                    "workflows",
                    body,
                    _request_timeout=REQUEST_TIMEOUT,
                )
        except PermanentError as exc:
            if exc.status == 409:
                return CreateResult.EXISTS
            raise
        return CreateResult.CREATED

    def _require_template(self, name: str) -> None:
        checked = self._templates.get(name)
        if checked is not None and self._clock() - checked < TEMPLATE_CACHE_SECONDS:
            return
        try:
            with translated_errors():
                self._objects.get_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self._namespace,
                    "workflowtemplates",
                    name,
                    _request_timeout=REQUEST_TIMEOUT,
                )
        except PermanentError as exc:
            if exc.status == 404:
                raise PermanentError(
                    f"WorkflowTemplate {self._namespace}/{name} does not exist",
                    reason=Reason.TEMPLATE_MISSING,
                ) from exc
            raise
        self._templates[name] = self._clock()

    def ping(self) -> tuple[bool, str]:
        """Readiness: the API server answers and the namespace's Workflows can be listed."""
        try:
            self._objects.list_namespaced_custom_object(
                GROUP,
                VERSION,
                self._namespace,
                "workflows",
                limit=1,
                _request_timeout=(2.0, 5.0),
            )
        except Exception as exc:  # noqa: BLE001 - reported, never swallowed silently
            return False, f"kubernetes: {type(exc).__name__}: {exc}"[:300]
        return True, "kubernetes ok"
