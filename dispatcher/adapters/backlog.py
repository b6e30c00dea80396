"""Orders waiting in Pub/Sub, read from Cloud Monitoring's subscription metrics.

Why Cloud Monitoring: Pub/Sub's own API cannot say how many messages a subscription holds or
how old the oldest is; GKE's operators read both from the metrics Pub/Sub exports,
``subscription/num_undelivered_messages`` and ``subscription/oldest_unacked_message_age``
(sampled every 60 s, visible after up to about 2 minutes). ``dispatcher status`` shows them
next to what the replicas hold. They are not always there: the emulator has no Monitoring,
and an operator may have no credentials or no ``monitoring.viewer`` role. Each of those is an
:class:`BacklogUnavailable` with the reason, shown instead of the figures, never a failure of
the whole command.

The REST form of ``projects.timeSeries.list`` is used through google-auth's
``AuthorizedSession`` (both already installed with the Pub/Sub client), so no Monitoring
client library is added for two gauges.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import google.auth
import google.auth.exceptions
from google.auth.transport.requests import AuthorizedSession

from dispatcher.adapters.pubsub_clients import EMULATOR_ENV

#: Where Cloud Monitoring answers; a private endpoint (or a test's server) may be named here.
ENDPOINT_ENV = "DISPATCHER_MONITORING_ENDPOINT"
DEFAULT_ENDPOINT = "https://monitoring.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/monitoring.read"
UNDELIVERED = "pubsub.googleapis.com/subscription/num_undelivered_messages"
OLDEST = "pubsub.googleapis.com/subscription/oldest_unacked_message_age"
#: Samples are 60 s apart and arrive late: look back far enough to always find the newest one.
LOOKBACK = dt.timedelta(minutes=10)
TIMEOUT_SECONDS = 10.0


class BacklogUnavailable(Exception):
    """Cloud Monitoring cannot be read here; the message says why."""


@dataclass(frozen=True, slots=True)
class Backlog:
    """One subscription's newest samples (None when Monitoring has no sample yet)."""

    waiting: int | None
    oldest_seconds: int | None


Session = Callable[[], Any]


def default_session() -> Any:
    """An authorized HTTP session from Application Default Credentials."""
    if os.environ.get(EMULATOR_ENV):
        raise BacklogUnavailable(f"{EMULATOR_ENV} is set: the emulator has no Cloud Monitoring")
    try:
        credentials, _ = google.auth.default(scopes=[SCOPE])
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise BacklogUnavailable(f"no Google credentials: {exc}") from exc
    return AuthorizedSession(credentials)  # type: ignore[no-untyped-call]


def read_backlog(
    project: str,
    subscriptions: Iterable[str],
    *,
    session: Session = default_session,
    endpoint: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Backlog]:
    """The newest backlog figures per subscription id (short name) of ``project``."""
    wanted = sorted(set(subscriptions))
    if not wanted:
        return {}
    base = (endpoint or os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).rstrip("/")
    end = now or dt.datetime.now(dt.UTC)
    http = session()
    try:
        figures = {
            metric: _newest(
                http,
                url=f"{base}/v3/projects/{project}/timeSeries",
                metric=metric,
                subscriptions=wanted,
                start=end - LOOKBACK,
                end=end,
            )
            for metric in (UNDELIVERED, OLDEST)
        }
    finally:
        http.close()
    return {
        name: Backlog(figures[UNDELIVERED].get(name), figures[OLDEST].get(name)) for name in wanted
    }


def _newest(
    http: Any,
    *,
    url: str,
    metric: str,
    subscriptions: list[str],
    start: dt.datetime,
    end: dt.datetime,
) -> dict[str, int]:
    names = ", ".join(f'"{name}"' for name in subscriptions)
    params: dict[str, str] = {
        "filter": f'metric.type = "{metric}" AND resource.labels.subscription_id = one_of({names})',
        "interval.startTime": _stamp(start),
        "interval.endTime": _stamp(end),
        "view": "FULL",
    }
    newest: dict[str, tuple[str, int]] = {}
    while True:
        try:
            response = http.get(url, params=params, timeout=TIMEOUT_SECONDS)
        except (OSError, google.auth.exceptions.GoogleAuthError) as exc:
            raise BacklogUnavailable(f"Cloud Monitoring not reachable: {exc}") from exc
        if response.status_code != 200:
            raise BacklogUnavailable(
                f"Cloud Monitoring answered HTTP {response.status_code}: {_message(response)}"
            )
        page = response.json()
        for series in page.get("timeSeries", []):
            name = series.get("resource", {}).get("labels", {}).get("subscription_id")
            for point in series.get("points", []):
                stamp = str(point.get("interval", {}).get("endTime", ""))[:19]  # to the second
                value = point.get("value", {}).get("int64Value")
                if name and value is not None and stamp > newest.get(name, ("", 0))[0]:
                    newest[name] = (stamp, int(value))
        token = page.get("nextPageToken")
        if not token:
            return {name: value for name, (_, value) in newest.items()}
        params["pageToken"] = token


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _message(response: Any) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return str(response.text)[:200]
