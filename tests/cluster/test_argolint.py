"""argolint (Argo's own offline validation) accepts valid templates and rejects broken ones.

Why: workflow_templates/*.yaml are linted with it; a linter that accepts everything would make
that check worthless, so both directions are pinned here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

VALID = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: ok
spec:
  entrypoint: main
  arguments:
    parameters: [{name: orders}]
  templates:
  - name: main
    dag:
      tasks:
      - {name: a, template: step}
      - {name: b, template: step, dependencies: [a], when: "{{workflow.parameters.orders}} != ''"}
  - name: step
    container: {image: busybox, command: ["true"]}
"""


def run(bins: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bins / "argolint"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_valid_template_passes(cluster_bin_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(VALID)
    result = run(cluster_bin_dir, path)
    assert result.returncode == 0, result.stderr
    assert 'WorkflowTemplate "ok": ok' in result.stdout


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("dependencies: [a]", "dependencies: [nope]"),
        ("template: step}\n", "template: missing}\n"),
        ("  entrypoint: main\n", "  entrypoint: main\n  bogusField: 1\n"),
    ],
)
def test_invalid_template_fails(
    cluster_bin_dir: Path, tmp_path: Path, broken: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    text = VALID.replace(broken, message, 1)
    assert text != VALID
    path.write_text(text)
    result = run(cluster_bin_dir, path)
    assert result.returncode == 1, result.stdout
    assert "INVALID" in result.stderr


def test_repo_templates_are_valid(cluster_bin_dir: Path) -> None:
    files = sorted(
        p
        for p in (Path(__file__).resolve().parents[2] / "workflow_templates").glob("*.yaml")
        if p.name != "kustomization.yaml"
    )
    if not files:
        pytest.skip("no workflow_templates/*.yaml yet")
    result = run(cluster_bin_dir, *files)
    assert result.returncode == 0, result.stderr
