"""The operators' dashboard, defined once and rendered for Cloud Monitoring and for Grafana.

Two kinds of users watch the same service: GKE users in Cloud Monitoring (a Config Connector
``MonitoringDashboard`` in ``k8s/infra/base/dashboard.yaml``) and Managed Prometheus users in
Grafana (``docs/dashboards/grafana.json``). Both files are rendered from the panels below, so
a panel changes in one place, and a test checks the committed files against this module. All
queries are PromQL, which Cloud Monitoring evaluates over the Pub/Sub system metrics as well
as over the dispatcher's own series scraped by Managed Prometheus.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import yaml

#: The subscriptions the dispatcher pulls (the intake one, or one per class): the same
#: pattern the backlog alert uses (k8s/infra/base/monitoring.yaml).
SUBSCRIPTIONS = 'subscription_id=~"orders(-.+)?-dispatcher"'
SCRAPED = 'namespace="burst-dispatcher", job="burst-dispatcher"'
PUBSUB = "pubsub_googleapis_com:subscription_"

Kind = Literal["line", "stacked", "bars", "stat"]


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)
    kind: Kind = "line"


PANELS: tuple[Panel, ...] = (
    Panel(
        "Orders waiting in Pub/Sub, per subscription",
        (
            (
                f"max by (subscription_id) ({PUBSUB}num_undelivered_messages{{{SUBSCRIPTIONS}}})",
                "{{subscription_id}}",
            ),
        ),
    ),
    Panel(
        "Oldest waiting order (s), per subscription",
        (
            (
                f"max by (subscription_id) ({PUBSUB}oldest_unacked_message_age{{{SUBSCRIPTIONS}}})",
                "{{subscription_id}}",
            ),
        ),
    ),
    Panel(
        "Workflows created per minute, by class",
        (
            (
                "sum by (size_class) (increase(burst_dispatcher_workflows_created_total[1m]))",
                "{{size_class}}",
            ),
        ),
        "stacked",
    ),
    Panel(
        "Orders held by the replicas, by class",
        (("sum by (size_class) (burst_dispatcher_held_orders)", "{{size_class}}"),),
    ),
    Panel(
        "Live Workflows against the cap, by class",
        (
            ("max by (size_class) (burst_dispatcher_live_workflows)", "live {{size_class}}"),
            ("max by (size_class) (burst_dispatcher_class_cap)", "cap {{size_class}}"),
        ),
    ),
    Panel(
        "Dead letters per minute, by reason",
        (
            (
                "sum by (reason) (increase(burst_dispatcher_orders_dead_lettered_total[1m]))",
                "{{reason}}",
            ),
        ),
        "bars",
    ),
    Panel(
        "Create failures per minute, by kind",
        (("sum by (kind) (increase(burst_dispatcher_create_failures_total[1m]))", "{{kind}}"),),
        "bars",
    ),
    Panel(
        "Dispatcher replicas up and ready",
        (
            (f"count(up{{{SCRAPED}}} == 1)", "up"),
            ("sum(burst_dispatcher_ready)", "ready"),
        ),
        "line",
    ),
)

_MONITORING_PLOT = {"line": "LINE", "stacked": "STACKED_AREA", "bars": "STACKED_BAR"}


def cloud_monitoring() -> dict[str, Any]:
    """The Config Connector ``MonitoringDashboard``."""
    widgets: list[dict[str, Any]] = []
    for panel in PANELS:
        if panel.kind == "stat":
            query, _ = panel.queries[0]
            widgets.append(
                {"title": panel.title, "scorecard": {"timeSeriesQuery": {"prometheusQuery": query}}}
            )
            continue
        data_sets = [
            {
                "plotType": _MONITORING_PLOT[panel.kind],
                "legendTemplate": legend.replace("{{", "${labels.").replace("}}", "}"),
                "timeSeriesQuery": {"prometheusQuery": query},
            }
            for query, legend in panel.queries
        ]
        widgets.append({"title": panel.title, "xyChart": {"dataSets": data_sets}})
    return {
        "apiVersion": "monitoring.cnrm.cloud.google.com/v1beta1",
        "kind": "MonitoringDashboard",
        "metadata": {"name": "burst-dispatcher", "namespace": "burst-dispatcher-infra"},
        "spec": {
            "displayName": "burst-dispatcher",
            "projectRef": {"external": "projects/PROJECT_ID"},
            "gridLayout": {"columns": 2, "widgets": widgets},
        },
    }


def grafana() -> dict[str, Any]:
    """A Grafana dashboard (JSON model) over a Prometheus data source chosen at import."""
    source = {"type": "prometheus", "uid": "${datasource}"}
    panels: list[dict[str, Any]] = []
    for index, panel in enumerate(PANELS):
        stacked = panel.kind in ("stacked", "bars")
        panels.append(
            {
                "id": index + 1,
                "type": "stat" if panel.kind == "stat" else "timeseries",
                "title": panel.title,
                "datasource": source,
                "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
                "targets": [
                    {"refId": chr(ord("A") + n), "expr": query, "legendFormat": legend}
                    for n, (query, legend) in enumerate(panel.queries)
                ],
                "fieldConfig": {
                    "defaults": {
                        "custom": {
                            "drawStyle": "bars" if panel.kind == "bars" else "line",
                            "stacking": {"mode": "normal" if stacked else "none"},
                        }
                    }
                    if panel.kind != "stat"
                    else {},
                    "overrides": [],
                },
            }
        )
    return {
        "title": "burst-dispatcher",
        "uid": "burst-dispatcher",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data"}
            ]
        },
        "panels": panels,
    }


HEADER = (
    "# Generated from dispatcher/operator/dashboards.py: edit the panels there, then\n"
    "# `dispatcher dashboard --format cloud-monitoring > k8s/infra/base/dashboard.yaml`.\n"
)


def render(fmt: Literal["cloud-monitoring", "grafana"]) -> str:
    if fmt == "grafana":
        return json.dumps(grafana(), indent=2) + "\n"
    return HEADER + yaml.safe_dump(cloud_monitoring(), sort_keys=False, width=100)
