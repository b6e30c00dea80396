"""The operations endpoint: ``/healthz``, ``/readyz`` and Prometheus ``/metrics`` on one port.

``/readyz`` answers with stable reason codes only (``not_ready: pubsub_unavailable``): the
probe is reachable from wherever the port is, and exception text can carry hostnames, paths or
credentials in URLs. The text goes to the log, once per change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from dispatcher.logging import get_logger

Check = Callable[[], tuple[bool, str]]

log = get_logger()


Route = Callable[[], tuple[int, bytes, str]]  # status, body, content type


class Readiness:
    """Named checks; the answer names the failing ones by code, the log gets their details."""

    def __init__(self, checks: dict[str, Check]) -> None:
        self._checks = dict(checks)
        self._last: dict[str, str | None] = {}

    def add(self, checks: dict[str, Check]) -> None:
        self._checks.update(checks)

    def __call__(self) -> tuple[bool, str]:
        failing: list[str] = []
        for code, check in self._checks.items():
            try:
                ok, detail = check()
            except Exception as exc:  # noqa: BLE001 - a failing check is a failed check
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            if not ok:
                failing.append(code)
                if self._last.get(code) != detail:
                    log.warning("readiness_check_failed", check=code, detail=detail[:500])
            self._last[code] = None if ok else detail
        return not failing, "ready" if not failing else "not_ready: " + ",".join(failing)


class OpsServer:
    def __init__(
        self,
        *,
        port: int,
        registry: CollectorRegistry,
        healthy: Check,
        ready: Check,
        extra: dict[str, Route] | None = None,
    ) -> None:
        routes: dict[str, Route] = {
            "/metrics": lambda: (200, generate_latest(registry), CONTENT_TYPE_LATEST),
            "/healthz": lambda: _check(healthy),
            "/readyz": lambda: _check(ready),
            **(extra or {}),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                status, body, kind = route() if route else (404, b"not found\n", "text/plain")
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # probes every few seconds would drown the logs

        self._server = ThreadingHTTPServer(("0.0.0.0", port), Handler)  # noqa: S104
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _check(check: Check) -> tuple[int, bytes, str]:
    ok, detail = check()
    return (200 if ok else 503), (detail + "\n").encode(), "text/plain; charset=utf-8"
