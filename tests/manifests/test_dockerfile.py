"""The Dockerfile's invariants, checked by parsing it (no Docker engine here).

Every FROM pinned to an exact version (never `latest`), a non-root numeric USER in the final
stage, `dispatcher` as ENTRYPOINT, a health story (HEALTHCHECK or the documented probes), pip
without cache, and runtime dependencies pinned to versions that satisfy pyproject.toml.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.manifests import tools

DOCKERFILE = tools.REPO / "Dockerfile"
DOCKERIGNORE = tools.REPO / ".dockerignore"
EXACT_TAG = re.compile(r"^[\w.\-/]+:\d+\.\d+\.\d+[\w.\-]*(@sha256:[0-9a-f]{64})?$")


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Dockerfile:
    stages: list[Stage]
    comments: list[str]


def parse(text: str) -> Dockerfile:
    """Instructions per stage, with line continuations joined and comments kept apart."""
    stages: list[Stage] = []
    comments: list[str] = []
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            comments.append(line)
            continue
        if not line and not logical:
            continue
        logical += line[:-1] + " " if line.endswith("\\") else line
        if line.endswith("\\"):
            continue
        keyword, _, rest = logical.strip().partition(" ")
        logical = ""
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(image=parts[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
        elif keyword != "ARG":
            raise ValueError(f"{keyword} before the first FROM")
    if not stages:
        raise ValueError("no FROM")
    return Dockerfile(stages, comments)


def violations(dockerfile: Dockerfile) -> list[str]:
    problems: list[str] = []
    names = {s.name for s in dockerfile.stages if s.name}
    for stage in dockerfile.stages:
        if stage.image in names:
            continue
        if ":latest" in stage.image or not EXACT_TAG.match(stage.image):
            problems.append(f"FROM {stage.image}: not an exact version")
    final = dockerfile.stages[-1]
    users = [arg for keyword, arg in final.instructions if keyword == "USER"]
    if not users:
        problems.append("final stage has no USER")
    else:
        uid = users[-1].split(":")[0]
        if not uid.isdigit() or int(uid) == 0:
            problems.append(f"USER {users[-1]}: must be a numeric non-root uid")
    entrypoints = [arg for keyword, arg in final.instructions if keyword == "ENTRYPOINT"]
    if not entrypoints or json.loads(entrypoints[-1]) != ["dispatcher"]:
        problems.append('ENTRYPOINT must be ["dispatcher"] (exec form)')
    has_healthcheck = any(k == "HEALTHCHECK" for k, _ in final.instructions)
    documented = any("/healthz" in c for c in dockerfile.comments)
    if not (has_healthcheck or documented):
        problems.append("neither HEALTHCHECK nor the documented /healthz probe")
    for stage in dockerfile.stages:
        for keyword, arg in stage.instructions:
            if (
                keyword == "RUN"
                and re.search(r"\bpip install\b", arg)
                and "--no-cache-dir" not in arg
            ):
                problems.append(f"pip install without --no-cache-dir: {arg[:60]}")
            if "latest" in arg.split() or ":latest" in arg:
                problems.append(f"{keyword} uses latest: {arg[:60]}")
    for keyword, arg in final.instructions:
        if keyword in {"COPY", "ADD"} and "--from=" not in arg:
            problems.append(f"final stage copies from the build context: {keyword} {arg}")
    return problems


def pinned_requirements(dockerfile: Dockerfile) -> dict[str, str]:
    pins: dict[str, str] = {}
    for stage in dockerfile.stages:
        for keyword, arg in stage.instructions:
            if keyword == "RUN" and "/wheels/burst_dispatcher" in arg:
                for name, version in re.findall(r'"([A-Za-z0-9_.\-]+)==([^"]+)"', arg):
                    pins[canonicalize_name(name)] = version
    return pins


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse(DOCKERFILE.read_text())


def test_dockerfile_invariants(dockerfile: Dockerfile) -> None:
    assert violations(dockerfile) == []
    assert len(dockerfile.stages) >= 2, "multi-stage: build tools stay out of the runtime image"


def test_runtime_dependencies_pinned_within_pyproject(dockerfile: Dockerfile) -> None:
    project = tomllib.loads((tools.REPO / "pyproject.toml").read_text())["project"]
    pins = pinned_requirements(dockerfile)
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in the Dockerfile"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {spec}"
    extra = set(pins) - {canonicalize_name(Requirement(s).name) for s in project["dependencies"]}
    assert not extra, f"pinned but not a dependency: {extra}"


def test_dockerignore_allows_only_the_build_inputs() -> None:
    lines = [
        ln.strip()
        for ln in DOCKERIGNORE.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: start by ignoring everything"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied: set[str] = set()
    for stage in parse(DOCKERFILE.read_text()).stages:
        for keyword, arg in stage.instructions:
            if keyword == "COPY" and "--from=" not in arg:
                copied.update(part.rstrip("/") for part in arg.split()[:-1])
    assert copied == allowed


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('FROM python:latest\nUSER 1000\nENTRYPOINT ["dispatcher"]\n# /healthz', "not an exact"),
        ('FROM python:3.11-slim\nUSER 1000\nENTRYPOINT ["dispatcher"]\n# /healthz', "not an exact"),
        ('FROM python:3.11.9-slim\nUSER app\nENTRYPOINT ["dispatcher"]\n# /healthz', "numeric"),
        ('FROM python:3.11.9-slim\nUSER 0\nENTRYPOINT ["dispatcher"]\n# /healthz', "numeric"),
        ('FROM python:3.11.9-slim\nENTRYPOINT ["dispatcher"]\n# /healthz', "no USER"),
        ("FROM python:3.11.9-slim\nUSER 10001\nENTRYPOINT dispatcher\n# /healthz", None),
        ('FROM python:3.11.9-slim\nUSER 10001\nENTRYPOINT ["dispatcher"]', "HEALTHCHECK"),
        (
            'FROM python:3.11.9-slim\nRUN pip install x\nUSER 1\nENTRYPOINT ["dispatcher"]\n'
            "# /healthz",
            "no-cache-dir",
        ),
    ],
)
def test_checker_rejects_bad_dockerfiles(text: str, problem: str | None) -> None:
    if problem is None:  # shell-form ENTRYPOINT is not JSON: the checker must refuse it loudly
        with pytest.raises(json.JSONDecodeError):
            violations(parse(text))
        return
    found = violations(parse(text))
    assert any(problem in p for p in found), found
