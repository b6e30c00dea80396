"""The node log's peak per pool: the most nodes alive at one moment, judged from lifetimes."""

from __future__ import annotations

from dispatcher.local.node_log import NodeLog, NodeSpan


class _Recorded(NodeLog):
    """A node log with given spans and no cluster behind it."""

    def __init__(self, spans: list[NodeSpan]) -> None:
        self._recorded = spans

    def spans(self) -> list[NodeSpan]:
        return list(self._recorded)


def test_a_node_gone_at_the_moment_another_is_created_does_not_count_twice() -> None:
    log = _Recorded(
        [
            NodeSpan("a", "small", 0.0, 10.0),
            NodeSpan("b", "small", 5.0, None),
            NodeSpan("c", "small", 10.0, 20.0),
            NodeSpan("d", "large", 1.0, 2.0),
            NodeSpan("e", "large", 1.5, 3.0),
        ]
    )
    assert log.peak() == {"small": 2, "large": 2}
