"""``/readyz`` names failing checks by stable code; exception text never reaches the probe.

A real OpsServer on an ephemeral port, asked over HTTP. Before issue 9 the body was the
exception's own text (hostnames, URLs with credentials, paths).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from dispatcher.adapters.http import OpsServer, Readiness
from tests.unit.helpers import get

SECRET = "https://user:hunter2@10.1.2.3/apis?token=abc"


def _boom() -> tuple[bool, str]:
    raise ConnectionError(f"cannot reach {SECRET}")


@pytest.fixture
def server() -> Iterator[OpsServer]:
    ready = Readiness(
        {
            "pubsub_unavailable": lambda: (False, f"pubsub: PermissionDenied {SECRET}"),
            "kubernetes_unavailable": _boom,
            "workflow_watch_not_synced": lambda: (True, "synced"),
        }
    )
    ops = OpsServer(port=0, registry=CollectorRegistry(), healthy=lambda: (True, "ok"), ready=ready)
    ops.start()
    yield ops
    ops.stop()


def test_readyz_reports_codes_not_exception_text(server: OpsServer) -> None:
    status, body = get(server.port, "/readyz")
    assert status == 503
    assert body == "not_ready: pubsub_unavailable,kubernetes_unavailable\n"
    assert "hunter2" not in body and "10.1.2.3" not in body


def test_readyz_is_ready_when_every_check_passes() -> None:
    ready = Readiness({"a": lambda: (True, "fine")})
    assert ready() == (True, "ready")
