"""The operations endpoint: ``/healthz``, ``/readyz`` and Prometheus ``/metrics`` on one port."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Check = Callable[[], tuple[bool, str]]


class OpsServer:
    def __init__(
        self, *, port: int, registry: CollectorRegistry, healthy: Check, ready: Check
    ) -> None:
        routes: dict[str, Callable[[], tuple[int, bytes, str]]] = {
            "/metrics": lambda: (200, generate_latest(registry), CONTENT_TYPE_LATEST),
            "/healthz": lambda: _check(healthy),
            "/readyz": lambda: _check(ready),
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
