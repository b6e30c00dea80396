"""The economics profile touches only the shipped pipeline's per-order step template, with the
names kwok-stages.yaml reads, and refuses a malformed file; with the autoscaler the step
template's GKE safe-to-evict promise is also made to Karpenter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatcher.local import autoscaler, economics, nodepools
from dispatcher.local.paths import REPO_ROOT

STAGES = REPO_ROOT / "servers" / "cluster" / "kwok-stages.yaml"


def _shipped() -> list[dict[str, Any]]:
    text = (REPO_ROOT / "workflow_templates" / "order-pipeline.yaml").read_text()
    return [d for d in yaml.safe_load_all(text) if d]


def _templates(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    [pipeline] = [d for d in docs if d["kind"] == "WorkflowTemplate"]
    return {t["name"]: t for t in pipeline["spec"]["templates"]}


def test_only_the_step_template_gets_the_annotations_and_the_input_is_untouched() -> None:
    shipped = _shipped()
    profile = economics.load()
    made = _templates(economics.annotate(shipped, profile, infra=autoscaler.base_pools()))
    step = made["step"]["metadata"]["annotations"]
    assert step[economics.RUN_TIME] == economics.run_time_expression(profile)
    assert step[economics.PREEMPT_PERMILLE] == str(round(profile.spot_preemption_rate * 1000))
    assert step[economics.SPOT_POOLS] == "small-spot,medium-spot"
    report = (made["report"].get("metadata") or {}).get("annotations") or {}
    assert economics.RUN_TIME not in report  # the exit handler has no order
    assert economics.RUN_TIME not in _templates(shipped)["step"]["metadata"]["annotations"]


def test_the_stages_read_the_annotations_the_profile_writes() -> None:
    text = STAGES.read_text()
    for name in (economics.RUN_TIME, economics.PREEMPT_PERMILLE, economics.SPOT_POOLS):
        assert f'["{name}"]' in text, name


def test_run_time_expression_picks_a_and_b_by_class(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(
        "run_seconds:\n  small: {a: 1, b: 2}\n  large: {a: 30, b: 0.5}\n"
        "default_run_seconds: {a: 7, b: 0}\nspot_preemption_rate: 0.25\n"
    )
    profile = economics.load(path)
    assert profile.permille == 250
    expression = economics.run_time_expression(profile)
    assert expression.startswith("{{=string(") and expression.endswith("+ 's'}}")
    assert "== 'small' ? 1.0" in expression and "== 'large' ? 30.0" in expression
    assert "== 'small' ? 2.0" in expression and "== 'large' ? 0.5" in expression
    assert "$.size_bytes" in expression and str(economics.GIB) in expression


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("run_seconds:\n  small: {a: 1}\n", "exactly a and b"),
        ("run_seconds:\n  small: {a: -1, b: 1}\n", ">= 0"),
        ("spot_preemption_rate: 1.5\n", "within 0..1"),
    ],
)
def test_a_malformed_profile_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        economics.load(path)


def test_safe_to_evict_false_becomes_do_not_disrupt() -> None:
    made = _templates(nodepools.honour_safe_to_evict(_shipped()))
    assert made["step"]["metadata"]["annotations"][nodepools.DO_NOT_DISRUPT] == "true"
    report = (made["report"].get("metadata") or {}).get("annotations") or {}
    assert nodepools.DO_NOT_DISRUPT not in report
