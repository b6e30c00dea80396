"""A structural-schema check of rendered objects against CRDs, as the API server does it.

Why apart from tools.py: the schema tests judge KEDA and Config Connector objects against
CRDs no test cluster serves; this is the check itself, tools.py the rendering and binaries.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def crd_schema(crds: list[dict[str, Any]], api_version: str, kind: str) -> dict[str, Any]:
    group, _, version = api_version.partition("/")
    for crd in crds:
        spec = crd["spec"]
        if spec["group"] != group or spec["names"]["kind"] != kind:
            continue
        for served in spec["versions"]:
            if served["name"] == version:
                schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
                return schema
    raise KeyError(f"no CRD for {api_version} {kind}")


def schema_errors(value: Any, schema: dict[str, Any], path: str = "") -> Iterator[str]:
    """Structural-schema check as the API server does it: unknown fields (what strict field
    validation rejects), types, enums and required fields. Enough to catch a misspelt field."""
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            yield f"{path}: expected int or string"
        return
    kind = schema.get("type")
    checks: dict[str, type | tuple[type, ...]] = {
        "object": dict,
        "array": list,
        "string": str,
        "boolean": bool,
        "integer": int,
        "number": (int, float),
    }
    if kind in checks and not isinstance(value, checks[kind]):
        yield f"{path or '.'}: expected {kind}, got {type(value).__name__}"
        return
    if kind in ("integer", "number") and isinstance(value, bool):
        yield f"{path}: expected {kind}, got bool"
    if "enum" in schema and value not in schema["enum"]:
        yield f"{path}: {value!r} not in {schema['enum']}"
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for req in schema.get("required", []):
            if req not in value:
                yield f"{path}.{req}: required"
        for key, sub in value.items():
            if props is not None and key in props:
                yield from schema_errors(sub, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                yield from schema_errors(sub, extra, f"{path}.{key}")
            elif props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
                if path == "" and key in ("apiVersion", "kind", "metadata"):
                    continue
                yield f"{path}.{key}: unknown field"
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from schema_errors(item, schema["items"], f"{path}[{i}]")
