"""``dispatcher publish`` against a real Pub/Sub server, read back through a real subscription.

What must hold: exactly the valid lines arrive, byte for byte, with their order id attribute;
every invalid line is reported with its number and the service's reason and never sent; a dry
run sends nothing; ``--rate`` bounds the pace as seen by the server's publish times; the exit
code says which of these happened.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dispatcher.cli import cli
from tests.pubsub.plugin import drain

pytestmark = pytest.mark.pubsub


def order(order_id: str, size: int = 1000, **extra: Any) -> bytes:
    body = {"order_id": order_id, "input": {"uri": f"gs://in/{order_id}", "size_bytes": size}}
    body.update(extra)
    return json.dumps(body, separators=(",", ":")).encode()


VALID = [order("p-1"), order("p-2", 6 * 10**9, priority=3), order("p-3", params={"k": "ü"})]
# line content, the reason the service gives it
INVALID = [
    (b"{not json", "invalid_json"),
    (b'{"order_id":"p-x","input":{"uri":"gs://in/x","size_bytes":-1}}', "schema"),
    (b"[1,2]", "not_an_object"),
    (order("p-y", schema_version=2), "unsupported_schema_version"),
    (
        b'{"order_id":"p-z","order_id":"p-z","input":{"uri":"gs://a/b","size_bytes":1}}',
        "duplicate_key",
    ),
    (order("p-w").replace(b"gs://", b"http://"), "uri_scheme"),
]


def write_lines(path: Path) -> dict[int, str]:
    """VALID and INVALID interleaved with a blank line; returns line number -> expected reason."""
    lines: list[bytes] = []
    expected: dict[int, str] = {}
    for index, data in enumerate(VALID):
        lines.append(data)
        bad, reason = INVALID[index * 2], INVALID[index * 2 + 1]
        for content, code in (bad, reason):
            lines.append(content)
            expected[len(lines)] = code
    lines.append(b"")
    path.write_bytes(b"\n".join(lines) + b"\n")
    return expected


def run(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        cli,
        ["--log-format", "json", "publish", *args],
        input=stdin,
        env=env,
        catch_exceptions=False,
    )


def received(clients: Any, subscription: str, expected: int) -> list[tuple[bytes, dict[str, str]]]:
    messages = drain(clients, subscription, expected=expected)
    return sorted((m.data, dict(m.attributes)) for m in messages.values())


def sent_nothing(clients: Any, topic: str, subscription: str) -> bool:
    """Publish a marker and read until it arrives: nothing else may have been on the topic."""
    marker = b"marker"
    clients.publisher.publish(topic, marker).result(timeout=30)
    got = drain(clients, subscription, expected=1)
    return [m.data for m in got.values()] == [marker]


def test_sends_exactly_the_valid_lines_and_reports_the_rest(
    pubsub_clients: Any, make_topic_subscription: Any, tmp_path: Path
) -> None:
    names = make_topic_subscription(prefix="publish")
    expected = write_lines(tmp_path / "orders.jsonl")
    result = run(str(tmp_path / "orders.jsonl"), "--topic", names.topic, "-o", "json")
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    assert {r["line"]: r["reason"] for r in summary["rejected"]} == expected
    assert all(r["detail"] for r in summary["rejected"])
    assert (summary["lines"], summary["orders"], summary["published"]) == (10, 3, 3)
    assert summary["classes"] == {"small": 2, "large": 1}
    assert received(pubsub_clients, names.subscription, 3) == sorted(
        (data, {"order_id": json.loads(data)["order_id"]}) for data in VALID
    )


def test_all_valid_from_stdin_to_the_subscriptions_topic_exits_0_with_a_table(
    pubsub_clients: Any, make_topic_subscription: Any
) -> None:
    names = make_topic_subscription(prefix="publish")
    # no --topic: the topic the configured subscription reads, asked of Pub/Sub
    env = {"DISPATCHER_PUBSUB__SUBSCRIPTION": names.subscription}
    result = run("-", stdin=b"\n".join(VALID) + b"\n", env=env)
    assert result.exit_code == 0, result.output
    assert "Published to " + names.topic in " ".join(result.stdout.split())
    assert [data for data, _ in received(pubsub_clients, names.subscription, 3)] == sorted(VALID)


def test_dry_run_counts_and_sends_nothing(
    pubsub_clients: Any, make_topic_subscription: Any, tmp_path: Path
) -> None:
    names = make_topic_subscription(prefix="publish")
    expected = write_lines(tmp_path / "orders.jsonl")
    result = run(str(tmp_path / "orders.jsonl"), "--topic", names.topic, "--dry-run", "-o", "json")
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    assert (summary["orders"], summary["invalid"], summary["sent"]) == (3, len(expected), 0)
    assert sent_nothing(pubsub_clients, names.topic, names.subscription)
    clean = run("-", "--dry-run", stdin=b"\n".join(VALID))
    assert clean.exit_code == 0, clean.output  # no topic needed: no Pub/Sub at all


def test_rate_bounds_the_pace_seen_by_the_server(
    pubsub_clients: Any, make_topic_subscription: Any
) -> None:
    names = make_topic_subscription(prefix="publish")
    count, rate, burst = 40, 20.0, 2  # the command's bucket holds a tenth of a second: 2
    lines = b"\n".join(order(f"r-{i:03d}") for i in range(count))
    started = time.monotonic()
    result = run("-", "--topic", names.topic, "--rate", str(rate), stdin=lines)
    took = time.monotonic() - started
    assert result.exit_code == 0, result.output
    messages = drain(pubsub_clients, names.subscription, expected=count)
    stamps = sorted(m.publish_time.timestamp() for m in messages.values())
    assert len(stamps) == count
    tolerance = 2  # the client's batches (50 ms) may land a message or two together
    for i in range(count):
        for j in range(i + 1, count):
            assert j - i + 1 <= burst + rate * (stamps[j] - stamps[i]) + tolerance, (i, j)
    assert (count - burst) / rate - 0.2 <= took < count / rate + 10
    assert stamps[-1] - stamps[0] >= (count - burst - tolerance) / rate


def test_failed_publish_stops_the_reading_and_exits_4(pubsub_clients: Any) -> None:
    missing = f"projects/{pubsub_clients.project}/topics/no-such-topic"
    count = 20_000  # seconds of work; the first failure comes back within a batch's latency
    lines = b"\n".join(order(f"s-{i}") for i in range(count))
    result = run("-", "--topic", missing, "-o", "json", stdin=lines)
    assert result.exit_code == 4, result.output
    summary = json.loads(result.stdout)
    assert summary["published"] == 0 and summary["failed"] == summary["sent"] >= 1
    assert summary["sent"] < count and summary["stopped"].startswith("a publish failed")
    assert "no-such-topic" in summary["errors"][0]


def test_a_topic_that_cannot_be_looked_up_exits_1(pubsub_clients: Any) -> None:
    env = {
        "DISPATCHER_PUBSUB__SUBSCRIPTION": f"projects/{pubsub_clients.project}/subscriptions/gone"
    }
    result = run("-", stdin=b"\n".join(VALID), env=env)
    assert result.exit_code == 1
    assert "cannot look up the orders topic" in result.output and "pass --topic" in result.output


def test_help_documents_the_exit_codes() -> None:
    text = " ".join(run("--help").stdout.split())
    for code in ("0 every line", "3 some lines were invalid", "4 a publish failed"):
        assert code in text
