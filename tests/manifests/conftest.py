"""Fixtures shared by the manifest tests: each environment's rendered app and infra overlays.

Why here: the hardening, invariant and monitoring tests all judge the same rendered objects,
once per environment; one definition keeps their environments and renders the same.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.manifests import tools


@pytest.fixture(scope="module", params=tools.ENVIRONMENTS)
def env(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def app(env: str) -> list[dict[str, Any]]:
    return tools.rendered(env)


@pytest.fixture(scope="module")
def infra(env: str) -> list[dict[str, Any]]:
    return tools.rendered(f"infra-{env}")
