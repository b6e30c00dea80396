"""Operator commands' pure parts: dead-letter records and replay attributes, limit edits and the Workflow census, plus the CLI surface that needs no server."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.adapters.pubsub import dead_letter_attributes
from dispatcher.cli import cli
from dispatcher.commands.output import ago, clip
from dispatcher.commands.pubsub_access import dead_letter_subscription, qualify
from dispatcher.config import load_settings
from dispatcher.core.decisions import DeadLetter
from dispatcher.core.order import Reason
from dispatcher.core.replay import (
    MAX_DELIVERY_ATTEMPTS,
    REPLAYED_FROM,
    UNKNOWN,
    DeadLetterRecord,
    Selection,
    reason_counts,
    replay_attributes,
    replay_fails_again,
)
from dispatcher.operator.census import take_census

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


# -- dead letters and replay ------------------------------------------------------------------
def contract_dead_letter(
    original: dict[str, str], *, reason: Reason = Reason.TEMPLATE_MISSING, order_id: str = "o-1"
) -> dict[str, str]:
    """Attributes exactly as the dispatcher's dead-letter publisher writes them."""
    delivery = SimpleNamespace(
        attributes=original, message_id="orig-7", publish_time=NOW - timedelta(hours=2)
    )
    decision = DeadLetter(
        receipts=(None,), reason=reason, detail="no template", stage="create", order_id=order_id
    )
    return dead_letter_attributes(delivery, decision)  # type: ignore[arg-type]


def test_replay_sends_the_original_attributes_and_where_they_came_from() -> None:
    original = {"order_id": "o-1", "tenant": "acme", "original_source": "upstream"}
    dead = contract_dead_letter(original)
    assert dead["dlq_reason"] == "template_missing" and dead["dispatcher_version"]
    sent = replay_attributes(dead, dead_letter_id="dlq-42")
    assert sent == {**original, REPLAYED_FROM: "dlq-42"}


def test_replay_strips_pubsub_policy_attributes_and_keeps_the_added_order_id() -> None:
    dead = contract_dead_letter({}, order_id="o-9")
    dead["CloudPubSubDeadLetterSourceDeliveryCount"] = "5"
    sent = replay_attributes(dead, dead_letter_id="d")
    assert sent == {"order_id": "o-9", REPLAYED_FROM: "d"}


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(
            lambda k: (
                not k.startswith("dlq_")
                and k not in {"original_message_id", "original_publish_time", "dispatcher_version"}
                and k not in {REPLAYED_FROM, "order_id"}
            )
        ),
        st.text(max_size=30),
        max_size=8,
    )
)
def test_replay_round_trips_any_upstream_attributes(original: dict[str, str]) -> None:
    dead = contract_dead_letter(original, order_id="o-5")
    sent = replay_attributes(dead, dead_letter_id="x")
    assert sent == {**original, "order_id": "o-5", REPLAYED_FROM: "x"}


def test_record_reads_the_contract_attributes() -> None:
    attributes = contract_dead_letter({"tenant": "acme"})
    record = DeadLetterRecord("d-1", b"{}", attributes, published_at=NOW - timedelta(minutes=5))
    assert (record.reason, record.stage, record.detail) == (
        "template_missing",
        "create",
        "no template",
    )
    assert record.order_id == "o-1"
    assert record.age_seconds(NOW) == pytest.approx(7200)  # from original_publish_time
    body = record.to_json(NOW)
    assert body["data"] == "{}" and body["attributes"]["tenant"] == "acme"


def test_record_of_pubsubs_own_dead_letter_policy() -> None:
    record = DeadLetterRecord(
        "d-2",
        b'{"order_id":"o-77","input":{}}',
        {
            "CloudPubSubDeadLetterSourceDeliveryCount": "5",
            "CloudPubSubDeadLetterSourceSubscription": "orders-dispatcher",
        },
        published_at=NOW - timedelta(seconds=30),
    )
    assert record.reason == MAX_DELIVERY_ATTEMPTS
    assert record.stage == "pubsub"
    assert "5 delivery attempts" in record.detail
    assert record.order_id == "o-77"  # salvaged from the body
    assert record.age_seconds(NOW) == pytest.approx(30)


def test_record_without_any_reason_and_unreadable_body() -> None:
    record = DeadLetterRecord("d-3", b"\xff\xfe", {})
    assert record.reason == UNKNOWN and record.order_id is None and record.age_seconds(NOW) is None
    assert record.to_json(NOW)["data_hex"] == "fffe"


def test_selection_and_counts() -> None:
    records = [
        DeadLetterRecord(f"d{i}", b"", {"dlq_reason": reason, "order_id": f"o-{i}"})
        for i, reason in enumerate(["schema", "template_missing", "schema", "invalid_json"])
    ]
    assert reason_counts(records) == [("schema", 2), ("invalid_json", 1), ("template_missing", 1)]
    by_reason = Selection(reasons=frozenset({"schema"}))
    assert [r.message_id for r in records if by_reason.matches(r)] == ["d0", "d2"]
    both = Selection(reasons=frozenset({"schema"}), order_ids=frozenset({"o-2", "o-1"}))
    assert [r.message_id for r in records if both.matches(r)] == ["d2"]
    assert all(Selection().matches(r) for r in records)
    assert replay_fails_again("schema") and not replay_fails_again("template_missing")


def test_default_names_follow_the_deployed_resources() -> None:
    cfg = load_settings(environ={})
    assert (
        dead_letter_subscription(None, settings=cfg, project=None)
        == "projects/local-project/subscriptions/orders-dead-letter-inspect"
    )
    assert (
        dead_letter_subscription(None, settings=cfg, project="prod-1")
        == "projects/prod-1/subscriptions/orders-dead-letter-inspect"
    )
    assert dead_letter_subscription("mine", settings=cfg, project=None).endswith(
        "local-project/subscriptions/mine"
    )
    full = "projects/x/subscriptions/y"
    assert dead_letter_subscription(full, settings=cfg, project="z") == full
    assert qualify("orders", kind="topics", project="p") == "projects/p/topics/orders"


# -- census ----------------------------------------------------------------------------------
def workflow(size_class: str | None, phase: str | None) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "burst-dispatcher"}
    if size_class:
        labels["burst-dispatcher.io/size-class"] = size_class
    body: dict[str, Any] = {"metadata": {"labels": labels}}
    if phase is not None:
        body["status"] = {"phase": phase}
    return body


def test_census_counts_live_workflows_per_class() -> None:
    cfg = load_settings(environ={})
    items = [
        workflow("small", None),
        workflow("small", "Pending"),
        workflow("small", "Running"),
        workflow("small", "Succeeded"),
        workflow("large", "Failed"),
        workflow("large", "Running"),
        workflow("retired", "Running"),
    ]
    census = take_census(items, cfg)
    rows = {row.name: row for row in census.classes}
    assert (rows["small"].live, rows["small"].finished, rows["small"].cap) == (3, 1, 40)
    assert rows["small"].headroom == 37 and rows["medium"].live == 0
    assert (rows["large"].live, rows["large"].headroom) == (1, 4)
    assert rows["retired"].cap is None and rows["retired"].headroom is None
    assert census.total == 7 and census.max_objects == cfg.limits.max_workflow_objects
    assert census.to_json()["classes"][0]["class"] == "small"


# -- the CLI surface without servers --------------------------------------------------------
def run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["--log-format", "json", *args], catch_exceptions=False)


def test_operator_commands_refuse_bad_arguments() -> None:
    bad_reason = run("dead-letter", "inspect", "--subscription", "s", "--reason", "nope")
    assert bad_reason.exit_code == 2
    nothing = run("limits", "set")
    assert nothing.exit_code == 2 and "nothing to change" in nothing.output
    unpaired = run("limits", "set", "--class", "small")
    assert unpaired.exit_code == 2 and "pairs" in unpaired.output
    no_class = run("limits", "pause")
    assert no_class.exit_code == 2 and "--class" in no_class.output


@pytest.mark.parametrize(
    "command",
    [
        ["dead-letter"],
        ["dead-letter", "inspect"],
        ["dead-letter", "replay"],
        ["report"],
        ["limits"],
        ["limits", "status"],
        ["limits", "set"],
        ["limits", "pause"],
        ["limits", "drain"],
        ["limits", "resume"],
    ],
)
def test_every_operator_command_explains_itself(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0 and len(result.output) > 400


def test_ages_and_clipping_read_well() -> None:
    assert [ago(s) for s in (None, 5, 125, 3 * 3600 + 300, 2 * 86400 + 4 * 3600)] == [
        "?",
        "5s",
        "2m",
        "3h05m",
        "2d04h",
    ]
    assert clip("a  b\nc", 10) == "a b c" and clip("x" * 20, 5) == "xxxx…"


def test_tables_are_not_cut_when_piped(tmp_path: Any) -> None:
    """`dispatcher plan | grep …` must see whole cells: a pipe gets full width, not Rich's 80
    columns (the medium pool's name and the orders/workflow header were cut to `…`)."""
    import os
    import subprocess
    import sys

    orders = tmp_path / "orders.jsonl"
    orders.write_text(
        json.dumps({"order_id": "m-1", "input": {"uri": "gs://b/m", "size_bytes": 2 * 1024**3}})
        + "\n"
    )
    config = Path(__file__).resolve().parents[2] / "k8s" / "overlays" / "prod" / "config.yaml"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run(
        [sys.executable, "-m", "dispatcher", "plan", "--config", str(config), str(orders)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    assert "…" not in proc.stdout, proc.stdout
    assert "orders/workflow" in proc.stdout
    assert re.search(r"│ medium .*│ +medium-spot │", proc.stdout), proc.stdout
    narrow = subprocess.run(
        [sys.executable, "-m", "dispatcher", "plan", "--config", str(config), str(orders)],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "60"},
        check=True,
        timeout=60,
    )
    assert "…" in narrow.stdout, "an explicit COLUMNS still wins"
