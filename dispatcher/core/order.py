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
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dispatcher.core.order_data import (
    MAX_PARAMS_DEPTH,
    DuplicateKeyError,
    HugeIntegerError,
    check_value,
    load_json,
    order_id_problem,
    text_problem,
    uri_problem,
)

MAX_SIZE_BYTES = 2**63 - 1
SCHEMA_VERSION = 1


class Reason(StrEnum):
    """Stable dead-letter reason codes (``dlq_reason``); never renamed, only added."""

    BODY_TOO_LARGE = "body_too_large"
    INVALID_ENCODING = "invalid_encoding"
    INVALID_JSON = "invalid_json"
    DUPLICATE_KEY = "duplicate_key"
    NOT_AN_OBJECT = "not_an_object"
    SCHEMA = "schema"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    ATTRIBUTE_MISMATCH = "attribute_mismatch"
    UNKNOWN_STEP = "unknown_step"
    URI_SCHEME = "uri_scheme"
    NO_SIZE_CLASS = "no_size_class"
    TEMPLATE_MISSING = "template_missing"
    REJECTED_BY_API = "rejected_by_api"
    INTERNAL_ERROR = "internal_error"


class OrderInput(BaseModel):
    """Where the order's input lives and how big it is (the size picks the class)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    uri: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$",
        description=(
            "Location of the input, e.g. gs://bucket/key: a URI (scheme:rest) without whitespace, "
            "control characters or '{{'; the scheme must be one the dispatcher's config allows "
            "(orders.allowed_uri_schemes)"
        ),
    )
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
        min_length=1,
        max_length=128,
        description=(
            "Idempotency key: one order, one run. One printable line: Unicode letters are "
            "welcome; control, format and line-separator characters, '/', '\\', '{{', "
            "leading or trailing whitespace, '.' and '..' are not"
        ),
    )
    input: OrderInput
    steps: dict[str, bool] = Field(
        default_factory=dict, description="Optional step name -> run it or not"
    )
    priority: int = Field(default=0, ge=-(2**31), le=2**31 - 1)
    params: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Passed through to the Workflow unchanged. Plain JSON data: no string or key holds "
            "'{{' or NUL, numbers are finite, integers fit 64 bits, nesting is at most "
            f"{MAX_PARAMS_DEPTH} levels, no object repeats a key"
        ),
        json_schema_extra={"propertyNames": {"not": {"pattern": "\\{\\{"}}},
    )

    @model_validator(mode="after")
    def _inert(self) -> Self:
        # One check for the whole order (one call out of pydantic's core: this runs per order on
        # the hot path); the message names the field.
        problem = order_id_problem(self.order_id)
        if problem:
            raise ValueError(f"order_id: {problem}")
        problem = uri_problem(self.input.uri)
        if problem:
            raise ValueError(f"input.uri: {problem}")
        for name in self.steps:
            problem = text_problem(name)
            if problem:
                raise ValueError(f"steps: step name {name!r:.60} {problem}")
        if self.params:
            check_value(self.params, path="params", max_depth=MAX_PARAMS_DEPTH)
        return self


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
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(Reason.INVALID_ENCODING, f"body is not UTF-8: {exc}")
    try:
        body = load_json(text)
    except DuplicateKeyError as exc:
        return Rejection(Reason.DUPLICATE_KEY, f"body repeats a key: {exc}")
    except RecursionError:
        return Rejection(Reason.SCHEMA, "body is nested too deeply to read")
    except HugeIntegerError as exc:
        return Rejection(Reason.SCHEMA, f"body holds a number out of range: {exc}")
    except ValueError as exc:
        return Rejection(Reason.INVALID_JSON, f"body is not JSON: {exc}")
    if not isinstance(body, dict):
        return Rejection(Reason.NOT_AN_OBJECT, "body must be a JSON object")
    version = body.get("schema_version", SCHEMA_VERSION)
    if type(version) is not int or version != SCHEMA_VERSION:
        # Python-mode validation would take True and 1.0 for the literal 1.
        return Rejection(
            Reason.UNSUPPORTED_SCHEMA_VERSION,
            f"schema_version must be the integer {SCHEMA_VERSION}, got {version!r:.40}",
            _readable_order_id(body),
        )
    try:
        # model_validate(body) without its Python wrapper (the same validator, the same
        # defaults): this runs once per order on the engine thread.
        order: Order = Order.__pydantic_validator__.validate_python(body)
    except ValidationError as exc:
        return _explain(body, exc)
    claimed = attributes.get("order_id")
    if claimed is not None and claimed != order.order_id:
        return Rejection(
            Reason.ATTRIBUTE_MISMATCH,
            f"attribute order_id={claimed!r} does not match body order_id={order.order_id!r}",
            order.order_id,
        )
    return order


def _explain(body: dict[str, Any], exc: ValidationError) -> Rejection:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    order_id = _readable_order_id(body)
    if any(error["loc"] == ("schema_version",) for error in errors):
        return Rejection(
            Reason.UNSUPPORTED_SCHEMA_VERSION,
            f"schema_version must be {SCHEMA_VERSION}: {first['msg']}",
            order_id,
        )
    detail = "; ".join(_describe(error) for error in errors[:5])
    if len(errors) > 5:
        detail += f"; and {len(errors) - 5} more"
    return Rejection(Reason.SCHEMA, detail, order_id)


def _describe(error: Any) -> str:
    if not error["loc"] and error["type"] == "value_error":
        # the order-wide check (Order._inert) names its field itself
        return str(error["msg"]).removeprefix("Value error, ")
    return f"{'.'.join(str(part) for part in error['loc']) or '(body)'}: {error['msg']}"


MAX_SALVAGE_BYTES = 1024 * 1024


def salvage_order_id(data: bytes) -> str | None:
    """Best effort: keep the order id of a rejected order so operators can find it."""
    if len(data) > MAX_SALVAGE_BYTES:
        return None
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return _readable_order_id(body) if isinstance(body, dict) else None


def _readable_order_id(body: dict[str, Any]) -> str | None:
    candidate = body.get("order_id")
    if isinstance(candidate, str) and 0 < len(candidate) <= 128:
        return None if order_id_problem(candidate) else candidate
    return None
