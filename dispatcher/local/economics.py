"""The local stack's economics profile: step pods that take time and spot pods that get preempted.

Why: on kwok nothing runs, so every pod ends ~0.5 s after it starts and no spot node is ever
reclaimed; a swarm's makespan, node-seconds and retries would mean nothing. With this profile the
local stack adds two annotations to the order pipeline's step template before applying it (the
shipped WorkflowTemplate is unchanged; Argo substitutes the expressions per pod and copies the
template's annotations onto the pod), and kwok's stages in servers/cluster/kwok-stages.yaml act
on them:

- RUN_TIME `burst-dispatcher.test/run-time`: "<seconds>s", seconds = a + b * input GiB with a, b
  per size class (economics.yaml), from the order item's `size_bytes`: the pod's time Running;
- PREEMPT_PERMILLE `burst-dispatcher.test/spot-preempt-permille`: the preemption chance per
  attempt in thousandths, applied only while the pod's `cloud.google.com/gke-nodepool` selector
  names one of SPOT_POOLS `burst-dispatcher.test/spot-pools` (the infra's spot pools), so the
  on-demand last retry is never preempted. Which attempts and when follow from the pod's uid
  (kwok-stages.yaml says why not from a weighted draw).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dispatcher.local import nodepools

DEFAULT_FILE = Path(__file__).with_name("economics.yaml")
RUN_TIME = "burst-dispatcher.test/run-time"
PREEMPT_PERMILLE = "burst-dispatcher.test/spot-preempt-permille"
SPOT_POOLS = "burst-dispatcher.test/spot-pools"
GIB = 1024**3


@dataclass(frozen=True)
class RunTime:
    """seconds = a + b * input GiB."""

    a: float
    b: float


@dataclass(frozen=True)
class Economics:
    run_seconds: dict[str, RunTime]
    default_run_seconds: RunTime
    spot_preemption_rate: float

    @property
    def permille(self) -> int:
        return round(self.spot_preemption_rate * 1000)


def load(path: Path = DEFAULT_FILE) -> Economics:
    """Read and check an economics file (ValueError naming the field when it is wrong)."""
    raw = yaml.safe_load(path.read_text()) or {}

    def run_time(value: Any, where: str) -> RunTime:
        if not isinstance(value, dict) or set(value) != {"a", "b"}:
            raise ValueError(f"{path}: {where} needs exactly a and b")
        a, b = float(value["a"]), float(value["b"])
        if a < 0 or b < 0:
            raise ValueError(f"{path}: {where}: a and b must be >= 0")
        return RunTime(a, b)

    rate = float(raw.get("spot_preemption_rate", 0.0))
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{path}: spot_preemption_rate must be within 0..1, not {rate}")
    classes = raw.get("run_seconds") or {}
    return Economics(
        run_seconds={str(k): run_time(v, f"run_seconds.{k}") for k, v in classes.items()},
        default_run_seconds=run_time(
            raw.get("default_run_seconds", {"a": 0.5, "b": 0.0}), "default_run_seconds"
        ),
        spot_preemption_rate=rate,
    )


def run_time_expression(economics: Economics) -> str:
    """An Argo expression template for the step pod's run time ("12.5s")."""
    size_class = "workflow.parameters['size-class']"

    def pick(field: str) -> str:
        chosen = str(getattr(economics.default_run_seconds, field))
        for name, run in sorted(economics.run_seconds.items()):
            chosen = f"({size_class} == '{name}' ? {float(getattr(run, field))} : {chosen})"
        return chosen

    gib = f"asFloat(jsonpath(inputs.parameters.order, '$.size_bytes')) / {GIB}"
    return f"{{{{=string({pick('a')} + {pick('b')} * {gib}) + 's'}}}}"


def annotate(
    docs: list[dict[str, Any]], economics: Economics, *, infra: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Copies of the rendered objects whose WorkflowTemplates' per-order container templates
    (those with an `order` input) carry the profile's annotations."""
    spot = ",".join(
        p["metadata"]["name"] for p in nodepools.scaled_pools(infra) if nodepools.pool_spot(p)
    )
    out = copy.deepcopy(docs)
    for doc in out:
        if doc.get("kind") != "WorkflowTemplate":
            continue
        for template in doc["spec"].get("templates", []):
            inputs = {p["name"] for p in (template.get("inputs") or {}).get("parameters", [])}
            if "container" not in template or "order" not in inputs:
                continue
            annotations = template.setdefault("metadata", {}).setdefault("annotations", {})
            annotations[RUN_TIME] = run_time_expression(economics)
            annotations[PREEMPT_PERMILLE] = str(economics.permille)
            annotations[SPOT_POOLS] = spot
    return out
