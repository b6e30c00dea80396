"""A fault-injecting proxy in front of the real kube-apiserver.

Clients speak plain HTTP to the proxy; the proxy speaks TLS with the kubeconfig's client
certificate to the API server. A configurable share of requests (watches excepted, so the
test's own view stays intact) is answered with 429 (with Retry-After), 500, or a reset
connection instead of being forwarded. The real server still does all the real work.
``gone_watches`` answers that many watch requests with the in-stream 410 Gone the server sends
for an expired resourceVersion (a young test cluster never compacts far enough to send one).
``lost_responses`` forwards that many requests, lets the server store them, then resets the
connection instead of answering: the ambiguous write (stored, but the client saw an error).
"""

from __future__ import annotations

import base64
import http.client
import random
import socket
import ssl
import struct
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import yaml

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Faults:
    too_many_requests: float = 0.0
    server_error: float = 0.0
    reset: float = 0.0
    only_methods: frozenset[str] = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
    seed: int = 1
    gone_watches: int = 0
    lost_responses: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    forwarded: Counter[str] = field(default_factory=Counter)
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def pick(self, method: str, path: str) -> str | None:
        if "watch=" in path:
            with self._lock:
                if self.gone_watches <= 0:
                    return None
                self.gone_watches -= 1
            return "410"
        if method not in self.only_methods:
            return None
        with self._lock:
            if self.lost_responses > 0:
                self.lost_responses -= 1
                return "lost"
        with self._lock:
            roll = self._rng.random()
        for kind, share in (
            ("429", self.too_many_requests),
            ("500", self.server_error),
            ("reset", self.reset),
        ):
            if roll < share:
                return kind
            roll -= share
        return None


class KubeFaultProxy:
    def __init__(self, kubeconfig: str, faults: Faults) -> None:
        config = yaml.safe_load(Path(kubeconfig).read_text())
        context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
        cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
        user = next(u for u in config["users"] if u["name"] == context["context"]["user"])
        upstream = urlparse(cluster["cluster"]["server"])
        self._tmp = tempfile.TemporaryDirectory(prefix="kube-proxy-")
        tmp = Path(self._tmp.name)
        tls = ssl.create_default_context()
        ca = cluster["cluster"].get("certificate-authority-data")
        if ca:
            (tmp / "ca.crt").write_bytes(base64.b64decode(ca))
            tls.load_verify_locations(str(tmp / "ca.crt"))
        cert, key = user["user"].get("client-certificate-data"), user["user"].get("client-key-data")
        if cert and key:
            (tmp / "c.crt").write_bytes(base64.b64decode(cert))
            (tmp / "c.key").write_bytes(base64.b64decode(key))
            tls.load_cert_chain(str(tmp / "c.crt"), str(tmp / "c.key"))
        token = user["user"].get("token")
        self.faults = faults
        self._source = config
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            # One request per connection; bodies are re-chunked so watch events flow through
            # as they come (a close-delimited body would reach the client only at the end).
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy.faults.pick(self.command, self.path)
                if fault == "reset":
                    proxy.faults.injected["reset"] += 1
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    self.connection.close()
                    return
                self.close_connection = True
                if fault == "410":
                    proxy.faults.injected[fault] += 1
                    event = (
                        b'{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1",'
                        b'"status":"Failure","reason":"Expired","code":410,'
                        b'"message":"injected: too old resource version"}}\n'
                    )
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(event)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(event)
                    return
                if fault in ("429", "500"):
                    proxy.faults.injected[fault] += 1
                    payload = b'{"kind":"Status","apiVersion":"v1","status":"Failure",' + (
                        b'"message":"injected: too many requests","code":429}'
                        if fault == "429"
                        else b'"message":"injected: internal error","code":500}'
                    )
                    self.send_response(int(fault))
                    if fault == "429":
                        self.send_header("Retry-After", "1")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                proxy.faults.forwarded[self.command] += 1
                upstream_conn = http.client.HTTPSConnection(
                    upstream.hostname, upstream.port, context=tls, timeout=330
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                if token:
                    headers["Authorization"] = f"Bearer {token}"
                try:
                    upstream_conn.request(self.command, self.path, body=body, headers=headers)
                    response = upstream_conn.getresponse()
                    if fault == "lost":
                        response.read()  # the server has done the work; the client never hears
                        proxy.faults.injected[fault] += 1
                        self.connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        self.connection.close()
                        return
                    self.send_response(response.status, response.reason)
                    for name, value in response.getheaders():
                        if name.lower() not in HOP_HEADERS:
                            self.send_header(name, value)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    while chunk := response.read1(65536):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (OSError, http.client.HTTPException):
                    self.close_connection = True
                finally:
                    upstream_conn.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig that reaches the API server through this proxy."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
            "users": [{"name": "proxy", "user": {}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
            "current-context": "proxy",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def __enter__(self) -> KubeFaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._tmp.cleanup()
