"""Order message v1: the contract upstream publishers rely on, and its validation.

The pydantic model is the source of truth; ``dispatcher/schema/order.v1.json`` is generated
from it (``dispatcher schema``) and a test keeps the two in step. Validation never raises: it
returns either an :class:`Order` or a :class:`Rejection` with a stable reason code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_SIZE_BYTES = 2**63 - 1
SCHEMA_VERSION = 1


class Reason(StrEnum):
    """Stable dead-letter reason codes (``dlq_reason``); never renamed, only added."""

    BODY_TOO_LARGE = "body_too_large"
    INVALID_ENCODING = "invalid_encoding"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    SCHEMA = "schema"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    ATTRIBUTE_MISMATCH = "attribute_mismatch"
    UNKNOWN_STEP = "unknown_step"
    NO_SIZE_CLASS = "no_size_class"
    TEMPLATE_MISSING = "template_missing"
    REJECTED_BY_API = "rejected_by_api"
    INTERNAL_ERROR = "internal_error"


class OrderInput(BaseModel):
    """Where the order's input lives and how big it is (the size picks the class)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    uri: str = Field(min_length=1, description="Location of the input, e.g. gs://bucket/key")
    size_bytes: int = Field(ge=0, le=MAX_SIZE_BYTES, description="Input size in bytes")


class Order(BaseModel):
    """One order: a chain of container steps to run over one input."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        title="Order",
        json_schema_extra={
            "$id": "https://burst-dispatcher.dev/schema/order.v1.json",
            "$schema": "https://json-schema.org/draft/2020-12/schema",
        },
    )

    schema_version: Literal[1] = Field(default=1, description="Contract version; only 1 exists")
    order_id: str = Field(
        min_length=1, max_length=128, description="Idempotency key: one order, one run"
    )
    input: OrderInput
    steps: dict[str, bool] = Field(
        default_factory=dict, description="Optional step name -> run it or not"
    )
    priority: int = Field(default=0, ge=-(2**31), le=2**31 - 1)
    params: dict[str, Any] = Field(
        default_factory=dict, description="Passed through to the Workflow unchanged"
    )


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message cannot become an order; ``order_id`` is kept when it could be read."""

    reason: Reason
    detail: str
    order_id: str | None = None


def order_json_schema() -> dict[str, Any]:
    """The published JSON Schema, generated from the model."""
    return Order.model_json_schema(mode="validation")


def parse_order(data: bytes, attributes: Mapping[str, str], *, max_bytes: int) -> Order | Rejection:
    """Validate one message body (and its attributes) against the v1 contract."""
    if len(data) > max_bytes:
        return Rejection(
            Reason.BODY_TOO_LARGE, f"body is {len(data)} bytes; the limit is {max_bytes}"
        )
    try:
        order = Order.model_validate_json(data)
    except ValidationError as exc:
        return _explain(data, exc)
    claimed = attributes.get("order_id")
    if claimed is not None and claimed != order.order_id:
        return Rejection(
            Reason.ATTRIBUTE_MISMATCH,
            f"attribute order_id={claimed!r} does not match body order_id={order.order_id!r}",
            order.order_id,
        )
    return order


def _explain(data: bytes, exc: ValidationError) -> Rejection:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    kind, loc = first["type"], first["loc"]
    if kind == "json_invalid":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as decode_error:
            return Rejection(Reason.INVALID_ENCODING, f"body is not UTF-8: {decode_error}")
        return Rejection(Reason.INVALID_JSON, f"body is not JSON: {first['msg']}")
    if kind == "model_type" and not loc:
        return Rejection(Reason.NOT_AN_OBJECT, "body must be a JSON object")
    order_id = salvage_order_id(data)
    if any(error["loc"] == ("schema_version",) for error in errors):
        return Rejection(
            Reason.UNSUPPORTED_SCHEMA_VERSION,
            f"schema_version must be {SCHEMA_VERSION}: {first['msg']}",
            order_id,
        )
    detail = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(body)'}: {error['msg']}"
        for error in errors[:5]
    )
    if len(errors) > 5:
        detail += f"; and {len(errors) - 5} more"
    return Rejection(Reason.SCHEMA, detail, order_id)


MAX_SALVAGE_BYTES = 1024 * 1024


def salvage_order_id(data: bytes) -> str | None:
    """Best effort: keep the order id of a rejected order so operators can find it."""
    if len(data) > MAX_SALVAGE_BYTES:
        return None
    try:
        body = json.loads(data)
    except ValueError:
        return None
    if isinstance(body, dict):
        candidate = body.get("order_id")
        if isinstance(candidate, str) and 0 < len(candidate) <= 128:
            return candidate
    return None
