"""The Cloud Monitoring objects watch what the environment really runs.

Alert filters and PromQL queries are strings no schema checks: a renamed subscription or
metric would leave an alert that can never fire. So: the backlog alert matches every
subscription the dispatcher reads (and nothing else), the dead-letter alert watches the
configured dead-letter topic, every `burst_dispatcher_*` series a query names is one the
dispatcher exports, and the replicas alert and dashboard select the job the PodMonitoring
creates (Managed Prometheus names the job after the PodMonitoring).
"""

from __future__ import annotations

import re
from typing import Any

from dispatcher.service.metrics import Metrics
from tests.manifests import tools
from tests.manifests.test_invariants import _read_subscriptions, _short, settings

__all__ = ["settings"]  # the fixture, reused


def _queries(infra: list[dict[str, Any]]) -> list[str]:
    """Every filter and PromQL query in the alert policies and the dashboard."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("filter", "query", "prometheusQuery") and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for kind in ("MonitoringAlertPolicy", "MonitoringDashboard"):
        for obj in tools.find(infra, kind):
            walk(obj["spec"])
    return found


def _condition(infra: list[dict[str, Any]], policy: str) -> list[dict[str, Any]]:
    conditions: list[dict[str, Any]] = tools.one(infra, "MonitoringAlertPolicy", policy)["spec"][
        "conditions"
    ]
    return conditions


def test_backlog_alert_covers_every_subscription_the_dispatcher_reads(
    env: str, infra: list[dict[str, Any]], settings: Any
) -> None:
    full_match = re.compile(r'monitoring\.regex\.full_match\("([^"]+)"\)')
    regexes = set()
    for condition in _condition(infra, "burst-dispatcher-backlog"):
        found = full_match.search(condition["conditionThreshold"]["filter"])
        assert found, condition["displayName"]
        regexes.add(found[1])
    (pattern,) = regexes
    read = {_short(p, "subscriptions", env) for p in _read_subscriptions(settings)}
    declared = {s["metadata"]["name"] for s in tools.find(infra, "PubSubSubscription")}
    matched = {name for name in declared if re.fullmatch(pattern, name)}
    assert matched == read, "alerts on exactly the subscriptions the dispatcher pulls"


def test_dead_letter_alert_watches_the_configured_topic(
    env: str, infra: list[dict[str, Any]], settings: Any
) -> None:
    topic = _short(settings.pubsub.dead_letter_topic_path(), "topics", env)
    (condition,) = _condition(infra, "burst-dispatcher-dead-letters")
    assert f'resource.label.topic_id = "{topic}"' in condition["conditionThreshold"]["filter"]


def test_queries_name_only_exported_metrics_and_the_scraped_job(
    app: list[dict[str, Any]], infra: list[dict[str, Any]]
) -> None:
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
    exported = {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes[family.type]
    }
    queries = _queries(infra)
    named = {m for q in queries for m in re.findall(r"\bburst_dispatcher_[a-z_]+", q)}
    assert named, "no dispatcher metric in any query: the regex is stale"
    assert named <= exported, f"not exported: {sorted(named - exported)}"
    (monitor,) = tools.find(app, "PodMonitoring")
    jobs = {j for q in queries for j in re.findall(r'job="([^"]+)"', q)}
    assert jobs == {monitor["metadata"]["name"]}
    namespaces = {n for q in queries for n in re.findall(r'namespace="([^"]+)"', q)}
    assert namespaces == {monitor["metadata"]["namespace"]}
