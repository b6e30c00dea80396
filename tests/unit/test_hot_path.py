"""The per-order shortcuts give exactly what the plain versions they replaced gave.

The intake runs once per order on the engine thread, so parts of it are written for speed (one
shared JSON decoder, hand-built items, fast paths for plain ASCII). Each test here keeps the
plain version as an oracle and compares on generated inputs: a shortcut that drifts from it —
another error text, one byte less in a size — fails here, not in a Workflow.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from dispatcher.core.order_data import _unique_keys, load_json

CHECKS = settings(max_examples=300, deadline=None, derandomize=True)
JSONISH = st.one_of(
    st.text(max_size=40),
    st.from_regex(r'\s*\{"a":\s*1,\s*"b":\s*\[1,2\]\s*\}\s*', fullmatch=True),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
        max_leaves=8,
    ).map(json.dumps),
)


def outcome(fn: Any, text: str) -> tuple[str, Any]:
    try:
        return "value", fn(text)
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


def plain_load(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_unique_keys)


@CHECKS
@given(JSONISH)
@example("\ufeff{}")
@example('{"a": 1, "a": 2}')
@example('{"a": 1} x')
@example("")
@example("[" * 50 + "]" * 50)
def test_load_json_answers_as_json_loads_with_the_hook(text: str) -> None:
    mine, plain = outcome(load_json, text), outcome(plain_load, text)
    if mine[0] == "value" and plain[0] == "value":
        # NaN != NaN: compare the texts the values make
        assert json.dumps(mine[1]) == json.dumps(plain[1])
    elif plain[0] == "ValueError" and "integer string conversion" in plain[1]:
        assert mine[0] == "HugeIntegerError"
    else:
        assert mine == plain
