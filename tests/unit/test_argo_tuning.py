"""The local stack's Argo controller runs with the flags docs/deploy.md asks of production's."""

from __future__ import annotations

from pathlib import Path

from dispatcher.local.cluster_start import ARGO_TUNING


def test_the_local_controller_runs_the_flags_the_deploy_guide_asks_for() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "deploy.md").read_text()
    assert ARGO_TUNING
    assert f"`{' '.join(ARGO_TUNING)}`" in guide
