"""Live edits of the configuration file: comments kept (ruamel.yaml round trip), only live
fields, every edit validated as the service validates a reload, states of classes included."""

from __future__ import annotations

import difflib
import re

import pytest

from dispatcher.config import ConfigError, default_config_text
from dispatcher.operator.limit_edits import LimitChange, LimitEditError, edit_limits

CLASS_TOPICS = default_config_text().replace("routing: direct ", "routing: class_topics ")


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]


def test_edit_keeps_comments_and_changes_only_the_named_lines() -> None:
    text = default_config_text()
    changes = [
        LimitChange(field="max_live_workflows", value=7, size_class="medium"),
        LimitChange(field="workflows_per_second", value=2.5),
        LimitChange(field="burst", value=30),
    ]
    edit = edit_limits(text, changes, source="test")
    assert len(changed_lines(text, edit.text)) == 6, changed_lines(text, edit.text)
    # The comment stays on its line, at its column.
    assert "  workflows_per_second: 2.5     # global creation rate (shared by all replicas)" in (
        edit.text
    )
    assert "    max_size_bytes: null            # everything bigger" in edit.text
    assert edit.after.size_class("medium").max_live_workflows == 7
    assert edit.after.size_class("small").max_live_workflows == 40
    assert (edit.after.limits.workflows_per_second, edit.after.limits.burst) == (2.5, 30)
    assert {(r.field, r.before, r.after) for r in edit.rows} == {
        ("classes[medium].max_live_workflows", 20, 7),
        ("limits.workflows_per_second", 5.0, 2.5),
        ("limits.burst", 20, 30),
    }


def test_edit_adds_missing_keys_and_sections() -> None:
    base = "classes:\n  - name: only   # the one class\n    template: t\n" + "".join(
        f"    {k}: {v}\n"
        for k, v in {
            "max_orders_per_workflow": 1,
            "max_batch_input_bytes": 10,
            "max_linger_seconds": 0,
            "node_pool": "p",
            "spot": "false",
            "cpu": '"1"',
            "memory": "1Gi",
            "max_live_workflows": 3,
        }.items()
    )
    edit = edit_limits(base, [LimitChange(field="burst", value=9)], source="t")
    assert edit.after.limits.burst == 9 and "# the one class" in edit.text
    assert edit.text.endswith("limits:\n  burst: 9\n")
    with_section = base + "limits:\n  workflows_per_second: 1   # slow\n"
    edit = edit_limits(
        with_section, [LimitChange(field="max_workflow_objects", value=50)], source="t"
    )
    assert "  workflows_per_second: 1   # slow\n  max_workflow_objects: 50" in edit.text
    assert (
        edit.after.limits.max_workflow_objects == 50 and edit.after.limits.workflows_per_second == 1
    )
    assert 'cpu: "1"' in edit.text  # quotes kept: 1 unquoted would be a number


def test_flow_style_is_edited_in_place() -> None:
    text = re.sub(
        r"^limits:\n(?:  .*\n)+",
        "limits: {workflows_per_second: 5, burst: 20, max_workflow_objects: 2000}  # flow\n",
        default_config_text(),
        count=1,
        flags=re.MULTILINE,
    )
    edit = edit_limits(text, [LimitChange(field="burst", value=3)], source="t")
    assert re.search(
        r"^limits: \{workflows_per_second: 5, burst: 3, max_workflow_objects: 2000\} +# flow$",
        edit.text,
        flags=re.MULTILINE,
    )
    assert [(r.field, r.after) for r in edit.rows] == [("limits.burst", 3)]
    assert len(changed_lines(text, edit.text)) == 2


def test_tiny_rates_are_written_without_an_exponent() -> None:
    edit = edit_limits(
        default_config_text(),
        [LimitChange(field="workflows_per_second", value=0.00001)],
        source="t",
    )
    assert edit.after.limits.workflows_per_second == pytest.approx(0.00001)
    assert "workflows_per_second: 0.00001 " in edit.text


def test_invalid_values_are_refused_with_the_field_and_reason() -> None:
    text = default_config_text()
    with pytest.raises(
        ConfigError, match=r"limits\.burst: Input should be greater than or equal to 1"
    ):
        edit_limits(text, [LimitChange(field="burst", value=0)], source="cm")
    with pytest.raises(ConfigError, match=r"classes"):
        edit_limits(
            text,
            [LimitChange(field="max_live_workflows", value=-1, size_class="small")],
            source="cm",
        )
    with pytest.raises(LimitEditError, match="no size class 'huge'"):
        edit_limits(
            text, [LimitChange(field="max_live_workflows", value=1, size_class="huge")], source="cm"
        )
    with pytest.raises(LimitEditError):
        edit_limits(
            text, [LimitChange(field="workflows_per_second", value=float("inf"))], source="cm"
        )
    with pytest.raises(ConfigError, match=r"state"):
        edit_limits(
            CLASS_TOPICS,
            [LimitChange(field="state", value="asleep", size_class="small")],
            source="cm",
        )


def test_only_live_fields_are_edited() -> None:
    text = default_config_text()
    with pytest.raises(LimitEditError, match="not a live field"):
        edit_limits(text, [LimitChange(field="max_order_bytes", value=1)], source="cm")
    with pytest.raises(LimitEditError, match="not a live field"):
        edit_limits(text, [LimitChange(field="cpu", value="2", size_class="small")], source="cm")


def test_unchanged_values_give_an_empty_diff() -> None:
    edit = edit_limits(default_config_text(), [LimitChange(field="burst", value=20)], source="t")
    assert edit.rows == () and edit.text == default_config_text()


def test_states_are_edited_and_shown_in_the_diff() -> None:
    paused = edit_limits(
        CLASS_TOPICS, [LimitChange(field="state", value="paused", size_class="large")], source="t"
    )
    assert paused.after.size_class("large").state == "paused"
    assert [(r.field, r.before, r.after) for r in paused.rows] == [
        ("classes[large].state", "active", "paused")
    ]
    assert changed_lines(CLASS_TOPICS, paused.text) == ["+    state: paused"]
    draining = edit_limits(
        paused.text, [LimitChange(field="state", value="draining", size_class="large")], source="t"
    )
    assert changed_lines(paused.text, draining.text) == [
        "-    state: paused",
        "+    state: draining",
    ]
    resumed = edit_limits(
        draining.text, [LimitChange(field="state", value="active", size_class="large")], source="t"
    )
    assert resumed.after.size_class("large").state == "active"


def test_holding_a_class_in_direct_routing_is_refused_naming_class_topics() -> None:
    with pytest.raises(ConfigError, match="class_topics"):
        edit_limits(
            default_config_text(),
            [LimitChange(field="state", value="paused", size_class="small")],
            source="cm",
        )
