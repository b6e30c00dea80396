"""No dead reference in the docs or the README: relative links, heading anchors and the
repository paths they name (a file mentioned as `k8s/…/x.yaml` must exist). A dead link is a
step an operator cannot follow."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs import markdown


@pytest.mark.parametrize(
    "document", markdown.DOCUMENTS, ids=lambda p: str(p.relative_to(markdown.REPO))
)
def test_every_reference_resolves(document: Path) -> None:
    assert markdown.dead_links(document) == []


def test_the_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## A `code` heading: yes\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[ok](other.md#a-code-heading-yes) [gone](missing.md) [bad](other.md#nope)\n"
        "See `docs/configuration.md` and examples/orders.jsonl; `README.md` exists.\n"
        "```sh\ncat DESIGN.md\n```\n"
    )
    assert markdown.dead_links(doc) == [
        "link missing.md: no such file",
        "link other.md#nope: no heading #nope",
        "path DESIGN.md: not in the repository",
        "path docs/configuration.md: not in the repository",
        "path examples/orders.jsonl: not in the repository",
    ]


def test_anchor_follows_github() -> None:
    heading = "Routing: `direct` in dev, `class_topics` in staging and prod"
    assert markdown.anchor(heading) == "routing-direct-in-dev-class_topics-in-staging-and-prod"
    assert markdown.anchor("Switching an environment's routing") == (
        "switching-an-environments-routing"
    )
