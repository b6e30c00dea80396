"""Every manifest parses, every overlay builds, and the rendered overlays match the golden files.

The golden files (tests/manifests/golden/<overlay>.yaml) are what review looks at when a base
changes: regenerate them on purpose with `UPDATE_GOLDEN=1 pytest tests/manifests` and commit the
diff together with the change. They are stored normalised (sorted keys, one document per object
in kustomize's order) and compared as data, so the kustomize build used does not matter.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.manifests import tools

MANIFEST_DIRS = [tools.REPO / "workflow_templates", tools.K8S]


def _yaml_files() -> list[Path]:
    return sorted(
        p for d in MANIFEST_DIRS for p in d.rglob("*.y*ml") if p.suffix in {".yaml", ".yml"}
    )


def _normalise(objs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objs, sort_keys=True, default_flow_style=False, width=100)


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(tools.REPO)))
def test_yaml_well_formed(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "\t" not in text, "tabs in YAML"
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    assert docs, "no YAML document"
    for doc in docs:
        assert isinstance(doc, dict), "top level must be a mapping"
        if path.name in {"config.yaml", "kustomizeconfig.yaml"}:
            continue  # the dispatcher's schema (test_invariants) / kustomize transformer config
        assert doc.get("apiVersion") and doc.get("kind"), "apiVersion and kind required"
        if doc["kind"] not in {"Kustomization", "Component"}:
            assert (doc.get("metadata") or {}).get("name") or "$patch" in doc, "metadata.name"


def test_kustomization_roots_are_all_known() -> None:
    # A new overlay must get a golden file and the invariant checks: list it in tools.OVERLAYS.
    roots = {p.parent for p in tools.K8S.rglob("kustomization.yaml")}
    libraries = {
        tools.K8S / "base",
        tools.K8S / "infra" / "base",
        tools.K8S / "components" / "environment",
        tools.K8S / "components" / "class-topics",
        tools.K8S / "infra" / "components" / "class-topics",
    }
    assert roots - libraries == set(tools.OVERLAYS.values())


@pytest.mark.parametrize("name", sorted(tools.OVERLAYS))
def test_overlay_matches_golden(name: str) -> None:
    try:
        objs = tools.render(tools.OVERLAYS[name])
    except tools.ToolUnavailable as exc:
        tools.unavailable(str(exc))
    assert objs, "overlay renders nothing"
    rendered = _normalise(objs)
    golden = tools.GOLDEN / f"{name}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(rendered, encoding="utf-8")
        return
    assert golden.is_file(), f"{golden} missing: run with UPDATE_GOLDEN=1"
    expected = golden.read_text(encoding="utf-8")
    if [d for d in yaml.safe_load_all(expected) if d] != objs:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                rendered.splitlines(keepends=True),
                fromfile=f"golden/{name}.yaml",
                tofile=f"rendered {name}",
            )
        )
        pytest.fail(f"{name} differs from its golden file (UPDATE_GOLDEN=1 to accept):\n{diff}")


def test_workflow_templates_kustomization_lists_every_template() -> None:
    directory = tools.REPO / "workflow_templates"
    listed = set(yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == present
