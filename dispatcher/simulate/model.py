"""The cluster a simulation runs on, as a validated YAML file (``simulate/models/*.yaml``).

Why a file and not flags: an operator compares the same swarm on two clusters (GKE and the
local test cluster), and every number in a model needs a comment saying where it came from.
Node pools, the autoscaler's profile, the Argo controller, the order pipeline's steps and their
durations per class are all the simulation knows about the world beyond the dispatcher's own
(real) core.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

Profile = Literal["balanced", "optimize-utilization"]
PodQueue = Literal["oldest-first", "newest-first"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Prices(_Strict):
    """USD per node-hour; the pool's ``spot`` flag picks which one is charged."""

    on_demand: float = Field(ge=0)
    spot: float = Field(ge=0)


class Pool(_Strict):
    """One node pool: a machine shape, how many nodes, what they cost and how fast they come."""

    name: str
    machine_type: str = ""
    cpu: float = Field(gt=0, description="allocatable vCPU per node")
    memory_gib: float = Field(gt=0, description="allocatable memory per node")
    prices: Prices
    spot: bool = False
    min_nodes: int = Field(default=0, ge=0)
    max_nodes: int = Field(ge=0)
    scale_up_seconds: float = Field(ge=0, description="pending pod seen -> node Ready")
    #: Spot preemption, either way or both: whole nodes reclaimed at a rate (GKE's spot VMs),
    #: or a share of step attempts (the test cluster's economics profile, per pod attempt).
    preemptions_per_node_hour: float = Field(default=0.0, ge=0)
    preemptions_per_attempt: float = Field(default=0.0, ge=0, le=1)

    def price(self) -> float:
        return self.prices.spot if self.spot else self.prices.on_demand


def _unneeded() -> dict[Profile, float]:
    return {"balanced": 600.0, "optimize-utilization": 60.0}


class Autoscaler(_Strict):
    """Cluster autoscaler timing; the profile picks how long an empty node stays."""

    profile: Profile = "balanced"
    scan_seconds: float = Field(default=10, gt=0)
    scale_down_unneeded_seconds: dict[Profile, float] = Field(default_factory=_unneeded)
    #: Empty nodes one pool gives up per scan at most (null: all that are unneeded).
    scale_down_nodes_per_scan: int | None = Field(default=None, ge=1)

    def unneeded_seconds(self) -> float:
        return self.scale_down_unneeded_seconds.get(self.profile, 600.0)


class Controller(_Strict):
    """The API server and Argo's workflow controller, as the dispatcher sees them."""

    create_seconds: float = Field(default=0.05, ge=0, description="one Workflow POST")
    workflows_per_second: float = Field(gt=0, description="Workflows the controller starts")
    parallelism: int = Field(default=20, ge=1, description="order-pipeline's main parallelism")
    ttl_seconds_after_success: float = Field(default=3600, ge=0)
    pod_start_seconds: float = Field(default=2.0, ge=0, description="bound pod -> running")
    step_gap_seconds: float = Field(
        default=1.0, ge=0, description="a step pod ends -> the next step's pod is created"
    )
    pods_per_second: float | None = Field(
        default=None, gt=0, description="pods the controller creates at most; null = unbounded"
    )


class Steps(_Strict):
    """Seconds one step pod of an order runs: ``base + per_gib * input GiB``."""

    base_seconds: float = Field(ge=0)
    seconds_per_gib: float = Field(ge=0)
    max_seconds: float = Field(default=43_200, gt=0, description="activeDeadlineSeconds")


class PipelineStep(_Strict):
    """One task of the order DAG; an optional one runs when the order's flag says so."""

    name: str
    optional: bool = False


def _order_pipeline() -> list[PipelineStep]:
    """workflow_templates/order-pipeline.yaml's ``order`` DAG, in order (a test compares)."""
    return [
        PipelineStep(name="fetch-input"),
        PipelineStep(name="validate"),
        PipelineStep(name="process"),
        PipelineStep(name="enrich", optional=True),
        PipelineStep(name="qc", optional=True),
        PipelineStep(name="publish-output"),
    ]


class ClusterModel(_Strict):
    name: str
    pools: list[Pool] = Field(min_length=1)
    autoscaler: Autoscaler = Autoscaler()
    controller: Controller
    steps: dict[str, Steps]
    pipeline: list[PipelineStep] = Field(default_factory=_order_pipeline, min_length=1)
    pod_queue: PodQueue = Field(
        default="oldest-first", description="which waiting pod gets room that frees"
    )
    retry_limit: int = Field(default=3, ge=0, description="retries before the fallback pool")
    retry_backoff_seconds: float = Field(
        default=30, ge=0, description="first retry's delay (template retry-backoff)"
    )
    retry_backoff_factor: float = Field(default=2, ge=1, description="each next retry's delay x")
    pubsub_deliveries_per_second: float | None = Field(
        default=None, gt=0, description="delivery rate to the dispatcher; null = unbounded"
    )
    #: Pools per environment where they differ (the local stack runs the pools of the overlay
    #: it was started with): a configuration whose ``environment`` is listed runs on those.
    environments: dict[str, list[Pool]] = Field(default_factory=dict)

    def for_environment(self, environment: str) -> ClusterModel:
        pools = self.environments.get(environment)
        return self if pools is None else self.model_copy(update={"pools": pools})

    def pool(self, name: str) -> Pool:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(f"node pool {name!r} is not in cluster model {self.name!r}")

    def with_profile(self, profile: Profile) -> ClusterModel:
        scaler = self.autoscaler.model_copy(update={"profile": profile})
        return self.model_copy(update={"autoscaler": scaler})


_UNITS = {
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "": 1.0,
}


def quantity(text: str) -> float:
    """A Kubernetes quantity (``500m``, ``8Gi``) as a plain number (cores, bytes)."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(m|k|Ki|Mi|Gi|Ti|M|G|T)?", text)
    if match is None:
        raise ValueError(f"not a quantity: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or ""]


MODELS_DIR = Path(__file__).parent / "models"


def load_model(path: Path | str) -> ClusterModel:
    """A model file, or the name of a shipped one (``gke``, ``test-cluster``)."""
    candidate = Path(path)
    if not candidate.exists() and (MODELS_DIR / f"{path}.yaml").exists():
        candidate = MODELS_DIR / f"{path}.yaml"
    try:
        document = yaml.safe_load(candidate.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{candidate}: not YAML: {exc}") from exc
    return ClusterModel.model_validate(document)
