"""Pub/Sub's backlog from Cloud Monitoring, over real HTTP with google-auth's real token flow.

There is no Cloud Monitoring server to run here, so a small HTTP server answers the two calls
the dispatcher makes as Google documents them: the OAuth token exchange a service-account key
names in ``token_uri`` (google-auth signs a real JWT with a real RSA key) and the REST
``projects.timeSeries.list``, paged. What is checked is the dispatcher's side: the credentials
reach the server, the filter names the subscriptions, pages are followed, the newest point
wins, and every way of failing becomes a reason shown instead of figures.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dispatcher.adapters.backlog import (
    ENDPOINT_ENV,
    OLDEST,
    UNDELIVERED,
    Backlog,
    BacklogUnavailable,
    read_backlog,
)
from dispatcher.commands.status import pubsub_backlog, render
from dispatcher.config import Settings, default_config_text, parse_settings
from dispatcher.operator.census import Census
from dispatcher.operator.status import summarize

TOKEN = "token-for-the-test"


def settings(routing: str) -> Settings:
    environ = {"DISPATCHER_PUBSUB__PROJECT": "acme", "DISPATCHER_PUBSUB__ROUTING": routing}
    return parse_settings(default_config_text(), source="test", environ=environ)


def series(metric: str, subscription: str, *points: tuple[str, int]) -> dict[str, Any]:
    return {
        "metric": {"type": metric},
        "resource": {"type": "pubsub_subscription", "labels": {"subscription_id": subscription}},
        "points": [
            {"interval": {"endTime": stamp}, "value": {"int64Value": str(value)}}
            for stamp, value in points
        ],
    }


class Monitoring:
    """What the fake API serves, and what it was asked."""

    def __init__(self) -> None:
        self.status = 200
        self.pages: dict[str, list[list[dict[str, Any]]]] = {UNDELIVERED: [], OLDEST: []}
        self.asked: list[dict[str, str]] = []


@pytest.fixture
def monitoring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Monitoring]:
    state = Monitoring()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # the OAuth token exchange
            length = int(self.headers["Content-Length"])
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
            self._answer(200, {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"})

        def do_GET(self) -> None:
            url = urllib.parse.urlparse(self.path)
            query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
            state.asked.append({"path": url.path, **query})
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._answer(401, {"error": {"message": "no token"}})
                return
            if state.status != 200:
                self._answer(state.status, {"error": {"message": "permission denied"}})
                return
            metric = query["filter"].split('"')[1]
            pages = state.pages[metric]
            index = int(query.get("pageToken", "0"))
            body: dict[str, Any] = {"timeSeries": pages[index] if pages else []}
            if index + 1 < len(pages):
                body["nextPageToken"] = str(index + 1)
            self._answer(200, body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    account = {
        "type": "service_account",
        "project_id": "acme",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "ops@acme.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": f"{base}/token",
    }
    path = tmp_path / "key.json"
    path.write_text(json.dumps(account))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.setenv(ENDPOINT_ENV, base)
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    yield state
    server.shutdown()
    server.server_close()


def test_the_newest_point_of_every_page_is_read_for_each_subscription(
    monitoring: Monitoring,
) -> None:
    monitoring.pages[UNDELIVERED] = [
        [series(UNDELIVERED, "orders", ("2026-12-01T10:00:00Z", 5), ("2026-12-01T10:01:00Z", 9))],
        [series(UNDELIVERED, "orders-small", ("2026-12-01T10:01:00.5Z", 40))],
    ]
    monitoring.pages[OLDEST] = [[series(OLDEST, "orders", ("2026-12-01T10:01:00Z", 75))]]
    figures = read_backlog("acme", ["orders", "orders-small", "orders-large"])
    assert figures == {
        "orders": Backlog(waiting=9, oldest_seconds=75),
        "orders-small": Backlog(waiting=40, oldest_seconds=None),
        "orders-large": Backlog(waiting=None, oldest_seconds=None),
    }
    paths = {asked["path"] for asked in monitoring.asked}
    assert paths == {"/v3/projects/acme/timeSeries"}
    assert [asked.get("pageToken") for asked in monitoring.asked] == [None, "1", None]
    first = monitoring.asked[0]["filter"]
    assert UNDELIVERED in first
    assert 'one_of("orders", "orders-large", "orders-small")' in first


@pytest.mark.parametrize("status", [403, 500])
def test_an_error_answer_is_a_reason_not_a_crash(monitoring: Monitoring, status: int) -> None:
    monitoring.status = status
    with pytest.raises(BacklogUnavailable, match=f"HTTP {status}: permission denied"):
        read_backlog("acme", ["orders"])


def test_with_the_emulator_or_without_credentials_status_says_why(
    monitoring: Monitoring, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    direct = settings("direct")
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:1")
    assert "emulator has no Cloud Monitoring" in str(pubsub_backlog(direct))
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    assert "no Google credentials" in str(pubsub_backlog(direct))
    assert monitoring.asked == []


def test_status_shows_the_waiting_orders_per_class_in_class_topics_routing(
    monitoring: Monitoring,
) -> None:
    routed = settings("class_topics")
    monitoring.pages[UNDELIVERED] = [
        [
            series(UNDELIVERED, "orders-dispatcher", ("2026-12-01T10:00:00Z", 3)),
            series(UNDELIVERED, "orders-small-dispatcher", ("2026-12-01T10:00:00Z", 1200)),
        ]
    ]
    monitoring.pages[OLDEST] = [
        [series(OLDEST, "orders-small-dispatcher", ("2026-12-01T10:00:00Z", 600))]
    ]
    census = Census(classes=(), total=0, max_objects=100, workflows_per_second=5, burst=5)
    status = summarize(routed, census, [], pubsub_backlog(routed))
    small = next(row for row in status.to_json()["classes"] if row["class"] == "small")
    assert (small["waiting"], small["oldest_seconds"]) == (1200, 600)
    assert status.to_json()["intake"] == {"waiting": 3, "oldest_seconds": None}
    from rich.console import Console

    console = Console(width=160, record=True)
    console.print(render(status))
    text = console.export_text()
    assert "waiting" in text and "1,200" in text and "10 min" in text
    assert "3 at intake" in text
