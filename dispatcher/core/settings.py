"""The configuration's shape: size classes, limits and settings as validated, frozen values.

Why a module of its own in the core: the engine, classifier, batcher and renderer take these
values as plain data. Reading a file or the environment is the loader's job
(``dispatcher.config``); nothing here touches either.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

DnsLabel = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length=63)
]
ClassName = Annotated[str, StringConstraints(pattern=r"^[a-z]([-a-z0-9]{0,18}[a-z0-9])?$")]
StepName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,30}$")]
Quantity = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")]
LabelValue = Annotated[
    str,
    StringConstraints(pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"),
]

MAX_INT64 = 2**63 - 1
ClassState = Literal["active", "paused", "draining"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SizeClass(_Strict):
    """One size class: which orders belong to it and how their Workflows are shaped."""

    name: ClassName
    max_size_bytes: int | None = Field(
        default=None, ge=0, le=MAX_INT64, description="upper bound (inclusive); null = no bound"
    )
    template: DnsLabel
    max_orders_per_workflow: int = Field(ge=1, le=1000)
    max_batch_input_bytes: int = Field(ge=1, le=MAX_INT64)
    max_linger_seconds: float = Field(ge=0, le=600)
    node_pool: LabelValue
    spot: bool
    fallback_node_pool: LabelValue | None = Field(
        default=None, description="on-demand pool for the last retry; null = node_pool"
    )
    cpu: Quantity
    memory: Quantity
    max_live_workflows: int = Field(ge=0, le=100_000)
    priority: int = Field(default=0, ge=-1000, le=1000)
    hold_budget: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="class_topics routing: messages of this class held at most (flow control);"
        " null = 4 x max_orders_per_workflow",
    )

    state: ClassState = Field(
        default="active",
        description="active; paused: takes no orders and creates no Workflows, its backlog stays"
        " in Pub/Sub; draining: takes no orders, creates what it holds (class_topics routing)",
    )

    def effective_hold_budget(self) -> int:
        return self.hold_budget or 4 * self.max_orders_per_workflow


class PubSubSettings(_Strict):
    """Where orders come from and where the dispatcher gives up on them."""

    project: str = "local-project"
    subscription: str = "orders-dispatcher"
    dead_letter_topic: str = "orders-dead-letter"
    max_messages: int = Field(default=2000, ge=1, le=100_000)
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_lease_seconds: int = Field(default=3000, ge=10, le=86_400)
    routing: Literal["direct", "class_topics"] = Field(
        default="direct",
        description="direct: dispatch from the intake subscription; class_topics: route valid "
        "orders to a topic per class and dispatch from a subscription per class, so one "
        "saturated class cannot starve the others",
    )
    class_topic: str = Field(default="orders-{size_class}", pattern=r"\{size_class\}")
    class_subscription: str = Field(
        default="orders-{size_class}-dispatcher", pattern=r"\{size_class\}"
    )

    def subscription_path(self) -> str:
        return _qualify(self.project, "subscriptions", self.subscription)

    def class_topic_path(self, size_class: str) -> str:
        return _qualify(self.project, "topics", self.class_topic.format(size_class=size_class))

    def class_subscription_path(self, size_class: str) -> str:
        name = self.class_subscription.format(size_class=size_class)
        return _qualify(self.project, "subscriptions", name)

    def max_hold_seconds(self) -> float:
        """Held longer than this, an order is re-parked (republished) before its lease ends."""
        return self.max_lease_seconds * 0.8

    def dead_letter_topic_path(self) -> str:
        return _qualify(self.project, "topics", self.dead_letter_topic)


def _qualify(project: str, kind: str, name: str) -> str:
    return name if name.startswith("projects/") else f"projects/{project}/{kind}/{name}"


class GlobalLimits(_Strict):
    """Limits that protect the cluster as a whole, across classes and replicas."""

    workflows_per_second: float = Field(default=5.0, gt=0, le=10_000)
    burst: int = Field(default=20, ge=1, le=100_000)
    max_workflow_objects: int = Field(default=2000, ge=1, le=1_000_000)


class OrderLimits(_Strict):
    """Bounds on single orders and on the Workflow objects built from them."""

    max_order_bytes: int = Field(default=16 * 1024, ge=256, le=1024 * 1024)
    # Byte-exact (core/batching.py): the Workflow as the API server stores it. 1 MiB is Argo's
    # own limit and leaves etcd's 1.5 MiB request limit 512 KiB for status and managedFields.
    max_workflow_object_bytes: int = Field(default=64 * 1024, ge=4096, le=1024 * 1024)
    # Schemes an order's input.uri may use (lower case); anything else is dead-lettered with
    # reason uri_scheme, so a step never gets a file:// or http:// location it did not expect.
    allowed_uri_schemes: tuple[str, ...] = Field(default=("gs",), min_length=1)

    @model_validator(mode="after")
    def _one_order_fits(self) -> Self:
        # A single order, rendered, must fit into one Workflow object with room for metadata.
        if self.max_workflow_object_bytes < 2 * self.max_order_bytes + 2048:
            raise ValueError(
                "max_workflow_object_bytes must be at least 2 * max_order_bytes + 2048 "
                "so that one order always fits into a Workflow"
            )
        return self


class ServiceSettings(_Strict):
    """How the long-running process behaves."""

    http_port: int = Field(default=8080, ge=0, le=65535)
    drain_seconds: float = Field(default=50, gt=0, le=3600)
    create_workers: int = Field(default=8, ge=1, le=128)
    reload_seconds: float = Field(default=10, gt=0, le=3600)
    lease_seconds: int = Field(
        default=30,
        ge=3,
        le=600,
        description="a replica's Lease duration, renewed every third of it: after a crash "
        "(no Lease released), the others take back its share of the limits after this",
    )


class DedupeSettings(_Strict):
    """The durable order-id ledger (``adapters/ledger.py``); read at start only."""

    window_seconds: float = Field(
        default=86_400,
        ge=3600,
        le=30 * 86_400,
        description="an order id seen within this window never becomes a second Workflow, "
        "across restarts and rollouts; keep it far longer than the Workflow TTL",
    )
    claims: bool = Field(
        default=True,
        description="claim orders before each create, so two replicas holding copies of one "
        "order never both create it (two API calls per Workflow; core/claims.py)",
    )
    claim_hold_seconds: float = Field(
        default=30,
        ge=5,
        le=600,
        description="how long a claim outlives its create; longer than a create takes to land "
        "and every replica's Workflow watch to report it",
    )


class Settings(_Strict):
    """The whole configuration of one dispatcher deployment."""

    environment: LabelValue = "dev"
    namespace: DnsLabel = "burst-dispatcher"
    workflow_name_prefix: ClassName = "bd"
    pubsub: PubSubSettings = PubSubSettings()
    limits: GlobalLimits = GlobalLimits()
    orders: OrderLimits = OrderLimits()
    service: ServiceSettings = ServiceSettings()
    dedupe: DedupeSettings = DedupeSettings()
    optional_steps: dict[StepName, bool] = Field(default_factory=dict)
    classes: list[SizeClass] = Field(min_length=1)

    @field_validator("classes")
    @classmethod
    def _classes_ordered(cls, classes: list[SizeClass]) -> list[SizeClass]:
        names = [c.name for c in classes]
        if len(set(names)) != len(names):
            raise ValueError(f"class names must be unique, got {names}")
        previous = -1
        for index, size_class in enumerate(classes):
            bound = size_class.max_size_bytes
            if bound is None and index != len(classes) - 1:
                raise ValueError(
                    f"class {size_class.name!r}: only the last class may have no max_size_bytes"
                )
            if bound is not None and bound <= previous:
                raise ValueError(
                    f"class {size_class.name!r}: max_size_bytes must increase from class to class"
                )
            previous = bound if bound is not None else previous
        return classes

    @model_validator(mode="after")
    def _holds_need_their_own_stream(self) -> Self:
        # One subscription for every class: a held class would fill the shared flow-control
        # window and starve the others. Only a stream per class can stop pulling one class.
        held = [c.name for c in self.classes if c.state != "active"]
        if held and self.pubsub.routing != "class_topics":
            raise ValueError(
                f"classes {held} are paused or draining, which needs pubsub.routing: "
                "class_topics (a subscription per class); in direct routing a held class "
                "would starve the others"
            )
        return self

    def size_class(self, name: str) -> SizeClass:
        for size_class in self.classes:
            if size_class.name == name:
                return size_class
        raise KeyError(name)
