"""Kubernetes error mapping and the named retry policy (sleep injected: no real waiting)."""

from __future__ import annotations

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from dispatcher.adapters.kube import create_retry_policy, translate
from dispatcher.adapters.kubeclient import translate as translate_for_command
from dispatcher.core.order import Reason
from dispatcher.errors import PermanentError, TransientError


def api_error(status: int, message: str = "boom", retry_after: str | None = None) -> ApiException:
    exc = ApiException(status=status, reason="Reason")
    exc.body = f'{{"kind":"Status","message":"{message}","code":{status}}}'
    exc.headers = {"Retry-After": retry_after} if retry_after else {}
    return exc


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_throttling_and_server_errors_are_transient(status: int) -> None:
    assert isinstance(translate(api_error(status)), TransientError)


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_client_errors_are_permanent_with_the_servers_message(status: int) -> None:
    mapped = translate(api_error(status, "spec.arguments: Invalid value"))
    assert isinstance(mapped, PermanentError) and mapped.reason is Reason.REJECTED_BY_API
    assert "spec.arguments: Invalid value" in str(mapped)


def test_connection_problems_are_transient() -> None:
    assert isinstance(translate(urllib3.exceptions.ProtocolError("reset")), TransientError)
    assert isinstance(translate(ConnectionResetError()), TransientError)
    unknown = ValueError("bug")
    assert translate(unknown) is unknown


def test_retry_after_is_read() -> None:
    mapped = translate(api_error(429, retry_after="7"))
    assert isinstance(mapped, TransientError) and mapped.retry_after == 7.0
    assert str(translate(api_error(500, "etcd timeout"))) == "HTTP 500: etcd timeout"


@pytest.mark.parametrize("status", [0, 408, 425, 429, 500, 502, 503, 504, 400, 403, 409, 501, 507])
def test_one_map_for_the_service_and_the_commands(status: int) -> None:
    """Defect: two translators disagreed (a third class, ApiRefused, and 5xx all transient)."""
    service = translate(api_error(status))
    command = translate_for_command(api_error(status), what="reading x")
    assert type(service) is type(command)
    assert getattr(service, "status", None) == getattr(command, "status", None) == status
    assert isinstance(service, TransientError) == (status in {0, 408, 425, 429, 500, 502, 503, 504})


def test_policy_retries_transient_then_succeeds_honouring_retry_after() -> None:
    slept: list[float] = []
    policy = create_retry_policy(attempts=5, sleep=slept.append)
    calls = iter([TransientError("429", retry_after=3.0), TransientError("500"), "ok"])

    def attempt() -> str:
        outcome = next(calls)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert policy(attempt) == "ok"
    assert len(slept) == 2 and slept[0] >= 3.0


def test_policy_gives_up_after_attempts_and_never_retries_permanent() -> None:
    slept: list[float] = []
    policy = create_retry_policy(attempts=3, sleep=slept.append)
    count = 0

    def always_transient() -> None:
        nonlocal count
        count += 1
        raise TransientError("503")

    with pytest.raises(TransientError):
        policy(always_transient)
    assert count == 3

    def permanent() -> None:
        raise PermanentError("bad", reason=Reason.REJECTED_BY_API)

    slept.clear()
    with pytest.raises(PermanentError):
        policy(permanent)
    assert slept == []
