"""Read the runnable parts and the references out of the project's Markdown.

Why a module: the deploy-guide test runs every shell block of the guides, and the link test
checks every reference in them; both must see the same blocks, the same way GitHub renders
them (fenced blocks, heading anchors), or a block or a link could escape both checks.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The documents whose references must resolve: every doc and the README.
DOCUMENTS = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]
SHELL_LANGUAGES = {"sh", "bash", "shell"}

_FENCE = re.compile(r"^```([A-Za-z0-9_-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
# A repository path in running text or code: a/b.md, k8s/x/y.yaml, examples/orders.jsonl …
_PATH = re.compile(
    r"(?<![\w/.$<{-])((?:\.\./)?(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_-]+\.(?:md|ya?ml|jsonl|json|py|sh|toml))\b"
)


@dataclass(frozen=True)
class Block:
    """One fenced shell block: where it is and what it runs."""

    document: Path
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(REPO)}:{self.line}"


def shell_blocks(document: Path) -> list[Block]:
    text = document.read_text()
    return [
        Block(document, text.count("\n", 0, m.start()) + 1, m.group(2))
        for m in _FENCE.finditer(text)
        if m.group(1) in SHELL_LANGUAGES
    ]


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading).strip().lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(document: Path) -> set[str]:
    without_code = _FENCE.sub("", document.read_text())
    return {anchor(h) for h in _HEADING.findall(without_code)}


def dead_links(document: Path) -> list[str]:
    """Relative link targets, heading anchors and repository paths that do not resolve."""
    text = document.read_text()
    dead: list[str] = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path_part, _, fragment = target.partition("#")
        path = (document.parent / path_part).resolve() if path_part else document
        if not path.exists():
            dead.append(f"link {target}: no such file")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            dead.append(f"link {target}: no heading #{fragment}")
    for mention in sorted(set(_PATH.findall(_LINK.sub("", text)))):
        if not _checkable(mention):
            continue
        candidates = (REPO / mention, document.parent / mention)
        if not any(p.exists() for p in candidates):
            dead.append(f"path {mention}: not in the repository")
    return dead


def _checkable(mention: str) -> bool:
    """Docs also name files relative to a package (`core/engine.py`) or outputs (`out.json`).
    Checked: Markdown files named alone, and paths from the repository root or whose first
    folder exists nowhere in the repository (`examples/…` when there is no examples/)."""
    first, sep, _ = mention.partition("/")
    if not sep:
        return mention.endswith(".md")
    return (REPO / first).is_dir() or first not in _folder_names()


@functools.cache
def _folder_names() -> set[str]:
    skip = {
        ".git",
        ".venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".hypothesis",
        ".pytest_cache",
    }
    names: set[str] = set()
    for _, dirs, _ in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in skip]
        names.update(dirs)
    return names
