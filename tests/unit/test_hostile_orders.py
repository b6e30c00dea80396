"""`dispatcher plan` on the shipped file of hostile orders: each line refused with its reason.

tests/fixtures/hostile-orders.jsonl holds one hostile body per line (non-finite numbers, Argo
template text, duplicate keys, deep nesting, huge integers, control characters and path tricks
in order ids, odd URIs, bodies that grow past the Workflow limit when escaped); the line of the
same number in hostile-orders.reasons is the documented reason (docs/operations.md). Before
issue 9 most of them were accepted or reported as invalid_json.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from dispatcher.cli import cli
from dispatcher.core.replay import REASON_CODES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ORDERS = FIXTURES / "hostile-orders.jsonl"
OPERATIONS_DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def expected_reasons() -> list[str]:
    lines = (FIXTURES / "hostile-orders.reasons").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_plan_rejects_every_hostile_order_with_its_documented_reason() -> None:
    expected = expected_reasons()
    assert len(expected) == len(ORDERS.read_bytes().splitlines())
    result = CliRunner().invoke(cli, ["plan", str(ORDERS), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["workflows"] == [], "a hostile order was planned into a Workflow"
    got = {r["line"]: r["reason"] for r in doc["rejected"]}
    assert got == dict(enumerate(expected, start=1))


def test_every_reason_in_the_fixture_is_a_documented_code() -> None:
    table = OPERATIONS_DOC.read_text()
    for reason in set(expected_reasons()):
        assert reason in REASON_CODES
        assert f"| `{reason}` |" in table, f"{reason} missing from docs/operations.md"
