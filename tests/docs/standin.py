"""Recording stand-ins for the commands of the deploy guide that reach Google or a registry.

Why: the guide is executed in CI (test_deploy_guide.py) against the local test cluster, where
`gcloud`, `docker` and `helm` cannot do their real work. Each stand-in accepts exactly the
command shapes the guide may use, checks their arguments (known subcommand, required flags,
well-formed values, the project the guide exported, order: a push needs a build and a
`configure-docker` for its registry) and records every call as a JSON line in
$STANDIN_LOG. Anything else exits 2 with the reason, so a typo in the guide fails the test.

Run as `python standin.py TOOL ARGS...` (the test puts one-line wrappers named after the
tools on PATH).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

API = re.compile(r"[a-z]+\.googleapis\.com")
ROLE = re.compile(r"roles/[A-Za-z.]+")
MEMBER = re.compile(r"(serviceAccount|user|group):\S+")
EMAIL = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]+\.iam\.gserviceaccount\.com")
REGISTRY = re.compile(r"[a-z0-9-]+-docker\.pkg\.dev")
IMAGE = re.compile(r"([a-z0-9-]+-docker\.pkg\.dev)/[a-z][a-z0-9-]+/[a-z0-9-]+/[a-z0-9-]+:[\w.-]+")


class Refused(Exception):
    """The call is not one the guide may make; the message says why."""


@dataclass(frozen=True)
class Shape:
    """An accepted command: positional count, flags with a value, flags without."""

    positionals: int | None  # None: one or more
    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    switches: frozenset[str] = frozenset()
    repeated: frozenset[str] = field(default_factory=frozenset)


def _shape(n: int | None, req: str = "", opt: str = "", sw: str = "", rep: str = "") -> Shape:
    return Shape(n, *(frozenset(s.split()) for s in (req, opt, sw, rep)))


GCLOUD: dict[tuple[str, ...], Shape] = {
    ("config", "set"): _shape(2),
    ("services", "enable"): _shape(None, opt="--project"),
    ("projects", "describe"): _shape(1, opt="--format"),
    ("projects", "add-iam-policy-binding"): _shape(1, "--member --role"),
    ("iam", "service-accounts", "create"): _shape(1, "--project", "--display-name"),
    ("iam", "service-accounts", "add-iam-policy-binding"): _shape(1, "--project --role --member"),
    ("container", "clusters", "get-credentials"): _shape(1, "--region", "--project"),
    ("auth", "configure-docker"): _shape(1, sw="--quiet"),
    ("pubsub", "topics", "publish"): _shape(1, "--project --message", "--attribute"),
    ("pubsub", "subscriptions", "pull"): _shape(1, "--project", "--limit", "--auto-ack"),
}
DOCKER: dict[tuple[str, ...], Shape] = {("build",): _shape(1, "-t"), ("push",): _shape(1)}
HELM: dict[tuple[str, ...], Shape] = {
    ("repo", "add"): _shape(2),
    ("install",): _shape(2, "-n --version", rep="--set --set-string", sw="--create-namespace"),
}


def parse(spec: dict[tuple[str, ...], Shape], args: list[str]) -> tuple[tuple[str, ...], Any]:
    """(command, {flag: value or [values] or True}, positionals) or Refused."""
    command = next(
        (c for c in sorted(spec, key=len, reverse=True) if tuple(args[: len(c)]) == c), None
    )
    if command is None:
        raise Refused(f"unknown command: {' '.join(args[:3])}")
    shape = spec[command]
    flags: dict[str, Any] = {}
    positionals: list[str] = []
    rest = args[len(command) :]
    while rest:
        word = rest.pop(0)
        if not word.startswith("-"):
            positionals.append(word)
            continue
        name, has_value, value = word.partition("=")
        if name in shape.switches:
            flags[name] = True
            continue
        if name not in shape.required | shape.optional | shape.repeated:
            raise Refused(f"{' '.join(command)}: unknown flag {name}")
        if not has_value:
            if not rest:
                raise Refused(f"{name} needs a value")
            value = rest.pop(0)
        if not value:
            raise Refused(f"{name} is empty (an unset variable?)")
        if name in shape.repeated:
            flags.setdefault(name, []).append(value)
        else:
            flags[name] = value
    missing = shape.required - set(flags)
    if missing:
        raise Refused(f"{' '.join(command)}: missing {sorted(missing)}")
    count = len(positionals)
    if (shape.positionals is None and count == 0) or (shape.positionals not in (None, count)):
        raise Refused(f"{' '.join(command)}: {count} arguments {positionals}")
    if any(not p for p in positionals):
        raise Refused(f"{' '.join(command)}: an empty argument (an unset variable?)")
    return command, (flags, positionals)


def _projects() -> set[str]:
    """The projects the guide exported; every project a call names must be one of them."""
    return {os.environ[v] for v in ("PROJECT", "MGMT_PROJECT") if os.environ.get(v)}


def _history() -> list[dict[str, Any]]:
    log = Path(os.environ["STANDIN_LOG"])
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line]


def check_gcloud(command: tuple[str, ...], flags: dict[str, Any], args: list[str]) -> str:
    """Semantic checks; returns what the real command would print that the guide uses."""
    projects = _projects()
    named = [flags[f] for f in ("--project",) if f in flags]
    if command in {("projects", "describe"), ("projects", "add-iam-policy-binding")}:
        named.append(args[0])
    if command == ("config", "set"):
        if args[0] != "project":
            raise Refused(f"config set {args[0]}: only the project is set")
        named.append(args[1])
    for project in named:
        if project not in projects:
            raise Refused(f"project {project!r} is not one the guide exported {sorted(projects)}")
    if command == ("services", "enable"):
        bad = [a for a in args if not API.fullmatch(a)]
        if bad:
            raise Refused(f"not API names: {bad}")
    if "--role" in flags and not ROLE.fullmatch(flags["--role"]):
        raise Refused(f"not a role: {flags['--role']}")
    if "--member" in flags and not MEMBER.fullmatch(flags["--member"]):
        raise Refused(f"not a member: {flags['--member']}")
    if command == ("iam", "service-accounts", "add-iam-policy-binding") and not EMAIL.fullmatch(
        args[0]
    ):
        raise Refused(f"not a service account e-mail: {args[0]}")
    if command == ("auth", "configure-docker"):
        bad = [h for h in args[0].split(",") if not REGISTRY.fullmatch(h)]
        if bad:
            raise Refused(f"not Artifact Registry hosts: {bad}")
    if command == ("pubsub", "topics", "publish"):
        try:
            body = json.loads(flags["--message"])
        except json.JSONDecodeError as exc:
            raise Refused(f"--message is not JSON: {exc}") from exc
        if not isinstance(body, dict) or "order_id" not in body:
            raise Refused("--message is not an order")
    if command == ("projects", "describe"):
        return "100000000001\n"
    if command == ("pubsub", "subscriptions", "pull"):
        return "Listed 0 items.\n"
    return ""


def check_docker(command: tuple[str, ...], flags: dict[str, Any], args: list[str]) -> str:
    image = flags.get("-t") if command == ("build",) else args[0]
    match = IMAGE.fullmatch(image or "")
    if match is None:
        raise Refused(f"not an Artifact Registry image with a tag: {image}")
    if command == ("build",):
        if not (Path(args[0]) / "Dockerfile").is_file():
            raise Refused(f"no Dockerfile in the build context {args[0]}")
        return ""
    history = _history()
    built = {c["flags"].get("-t") for c in history if c["argv"][:2] == ["docker", "build"]}
    if image not in built:
        raise Refused(f"push of {image}, which was not built")
    hosts = {
        h
        for c in history
        if c["argv"][1:3] == ["auth", "configure-docker"]
        for h in c["args"][0].split(",")
    }
    if match.group(1) not in hosts:
        raise Refused(f"push to {match.group(1)} without `gcloud auth configure-docker` for it")
    return ""


def check_helm(command: tuple[str, ...], flags: dict[str, Any], args: list[str]) -> str:
    if command == ("repo", "add"):
        if not args[1].startswith("https://"):
            raise Refused(f"repository URL {args[1]} is not https")
        return ""
    repos = {c["args"][0] for c in _history() if c["argv"][1:3] == ["repo", "add"]}
    repo, _, chart = args[1].partition("/")
    if repo not in repos:
        raise Refused(f"chart {args[1]} from a repository never added")
    pinned = os.environ.get("STANDIN_KEDA_VERSION", "").removeprefix("v")
    if chart == "keda" and flags["--version"] != pinned:
        raise Refused(f"KEDA {flags['--version']}, the tests pin {pinned}")
    return ""


Check = Callable[[tuple[str, ...], dict[str, Any], list[str]], str]
TOOLS: dict[str, tuple[dict[tuple[str, ...], Shape], Check]] = {
    "gcloud": (GCLOUD, check_gcloud),
    "docker": (DOCKER, check_docker),
    "helm": (HELM, check_helm),
}


def main(argv: list[str]) -> int:
    tool, args = argv[0], argv[1:]
    spec, check = TOOLS[tool]
    try:
        command, (flags, positionals) = parse(spec, args)
        output = check(command, flags, positionals)
    except Refused as exc:
        print(f"{tool} (stand-in): refused: {exc}", file=sys.stderr)
        return 2
    record = {"argv": [tool, *args], "command": list(command), "flags": flags, "args": positionals}
    with Path(os.environ["STANDIN_LOG"]).open("a") as log:
        log.write(json.dumps(record) + "\n")
    sys.stdout.write(output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
