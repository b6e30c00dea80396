"""Reloads change exactly the live fields, or nothing (issue 8, defect 7)."""

from __future__ import annotations

from dispatcher.core.limits import LIVE_FIELDS, compare, limits_of
from tests.unit.helpers import settings


def test_a_change_of_live_limits_is_accepted() -> None:
    old = settings()
    new = old.model_copy(
        update={
            "limits": old.limits.model_copy(update={"burst": 7}),
            "classes": [
                c.model_copy(update={"max_live_workflows": 1}) if c.name == "large" else c
                for c in old.classes
            ],
        }
    )
    reload = compare(old, new)
    assert reload.accepted
    assert reload.changes == {
        "limits.burst": (old.limits.burst, 7),
        "classes[large].max_live_workflows": (old.size_class("large").max_live_workflows, 1),
    }
    assert limits_of(new).cap("large") == 1


def test_any_other_change_refuses_the_whole_reload_naming_the_field() -> None:
    old = settings()
    new = old.model_copy(
        update={
            "environment": "staging",
            "limits": old.limits.model_copy(update={"burst": 7}),
            "classes": [
                c.model_copy(update={"max_linger_seconds": 1}) if c.name == "small" else c
                for c in old.classes
            ],
        }
    )
    reload = compare(old, new)
    assert not reload.accepted
    assert reload.refused == ("classes.small.max_linger_seconds", "environment")


def test_adding_a_class_is_refused() -> None:
    old = settings()
    extra = old.classes[-1].model_copy(update={"name": "huge", "max_size_bytes": None})
    bounded = old.classes[-1].model_copy(update={"max_size_bytes": 10**13})
    new = old.model_copy(update={"classes": [*old.classes[:-1], bounded, extra]})
    assert "classes.huge" in compare(old, new).refused


def test_the_live_fields_are_one_list() -> None:
    assert LIVE_FIELDS == (
        "limits.workflows_per_second",
        "limits.burst",
        "limits.max_workflow_objects",
        "classes[*].max_live_workflows",
        "classes[*].state",
    )


def test_a_change_of_class_state_is_live() -> None:
    old = settings()
    old = old.model_copy(
        update={"pubsub": old.pubsub.model_copy(update={"routing": "class_topics"})}
    )
    new = old.model_copy(
        update={
            "classes": [
                c.model_copy(update={"state": "paused"}) if c.name == "large" else c
                for c in old.classes
            ]
        }
    )
    reload = compare(old, new)
    assert reload.accepted and reload.changes == {"classes[large].state": ("active", "paused")}
    assert limits_of(new).state("large") == "paused" and limits_of(new).state("small") == "active"
