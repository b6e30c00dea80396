"""Shared pieces of the simulator's tests: a small configuration and a fast cluster model."""

from __future__ import annotations

import pytest

from dispatcher.config import Settings, load_settings
from dispatcher.logging import configure
from dispatcher.simulate.model import ClusterModel, load_model


@pytest.fixture(autouse=True)
def quiet_logs() -> object:
    configure("json", "critical")
    yield
    configure("json", "info")


@pytest.fixture(scope="session")
def dev_settings() -> Settings:
    return load_settings("config/dev.yaml", environ={})


@pytest.fixture(scope="session")
def gke() -> ClusterModel:
    return load_model("gke")


def with_preemption(model: ClusterModel, rate: float) -> ClusterModel:
    """Spot pools that lose nodes often enough for a small test to see it."""
    pools = [p.model_copy(update={"preemptions_per_node_hour": rate}) for p in model.pools]
    return model.model_copy(update={"pools": pools})


def with_attempt_preemption(model: ClusterModel, share: float) -> ClusterModel:
    """Spot pools that lose this share of step attempts, as the test cluster's profile does."""
    pools = [p.model_copy(update={"preemptions_per_attempt": share}) for p in model.pools]
    return model.model_copy(update={"pools": pools})
