"""The committed JSON Schema is exactly what the model generates (regenerate on purpose)."""

from __future__ import annotations

import json
from importlib import resources

from click.testing import CliRunner

from dispatcher.cli import cli
from dispatcher.core.order import order_json_schema


def committed() -> dict[str, object]:
    text = resources.files("dispatcher").joinpath("schema/order.v1.json").read_text("utf-8")
    loaded: dict[str, object] = json.loads(text)
    return loaded


def test_committed_schema_matches_model() -> None:
    assert committed() == order_json_schema(), (
        "regenerate with: dispatcher schema > dispatcher/schema/order.v1.json"
    )


def test_schema_states_the_contract() -> None:
    schema = order_json_schema()
    assert set(schema["required"]) == {"order_id", "input"}
    size = schema["$defs"]["OrderInput"]["properties"]["size_bytes"]
    assert size == size | {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
    order_id = schema["properties"]["order_id"]
    assert (order_id["minLength"], order_id["maxLength"]) == (1, 128)
    assert schema["additionalProperties"] is False


def test_schema_command_prints_it() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output) == committed()
