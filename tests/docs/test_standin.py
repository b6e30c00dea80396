"""The deploy guide's stand-ins refuse what the real tools would not do for the guide: the
deploy-guide test is only as strict as they are."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

STANDIN = Path(__file__).with_name("standin.py")


class Standin:
    """Runs the stand-ins as the guide's wrappers do, with one call log per test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.log = tmp / "calls.jsonl"
        (tmp / "Dockerfile").write_text("FROM scratch\n")
        self.env = {
            "STANDIN_LOG": str(self.log),
            "PROJECT": "acme-orders-dev",
            "STANDIN_KEDA_VERSION": "v2.21.0",
        }

    def __call__(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(STANDIN), *argv],
            env=self.env,
            cwd=self.tmp,
            capture_output=True,
            text=True,
            check=False,
        )


@pytest.fixture
def run(tmp_path: Path) -> Standin:
    return Standin(tmp_path)


IMAGE = "europe-west1-docker.pkg.dev/acme-orders-dev/burst-dispatcher/burst-dispatcher:0.1.0"


def test_accepted_calls_are_recorded(run: Standin) -> None:
    assert run("gcloud", "projects", "describe", "acme-orders-dev", "--format=value(x)").stdout == (
        "100000000001\n"
    )
    assert (
        run(
            "gcloud", "auth", "configure-docker", "europe-west1-docker.pkg.dev", "--quiet"
        ).returncode
        == 0
    )
    assert run("docker", "build", "-t", IMAGE, ".").returncode == 0
    assert run("docker", "push", IMAGE).returncode == 0
    calls = [json.loads(line) for line in run.log.read_text().splitlines()]
    assert [c["command"] for c in calls] == [
        ["projects", "describe"],
        ["auth", "configure-docker"],
        ["build"],
        ["push"],
    ]


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["gcloud", "container", "clusters", "create", "x"], "unknown command"),
        (["gcloud", "config", "set", "project", "acme-orders-prd"], "not one the guide exported"),
        (["gcloud", "services", "enable", "container"], "not API names"),
        (["gcloud", "container", "clusters", "get-credentials", "c", "--zone=z"], "unknown flag"),
        (["gcloud", "iam", "service-accounts", "create", "sa"], "missing ['--project']"),
        (
            [
                "gcloud",
                "pubsub",
                "topics",
                "publish",
                "orders",
                "--project=acme-orders-dev",
                "--message=not json",
            ],
            "not JSON",
        ),
        (
            [
                "gcloud",
                "projects",
                "add-iam-policy-binding",
                "acme-orders-dev",
                "--member=serviceAccount:x",
                "--role=",
            ],
            "empty",
        ),
        (["docker", "push", IMAGE], "not built"),
        (["docker", "build", "-t", "burst-dispatcher:0.1.0", "."], "not an Artifact Registry"),
        (
            ["helm", "install", "keda", "kedacore/keda", "-n", "keda", "--version", "2.21.0"],
            "never added",
        ),
    ],
)
def test_refused(run: Standin, argv: list[str], reason: str) -> None:
    proc = run(*argv)
    assert proc.returncode == 2, proc.stderr
    assert reason in proc.stderr
    assert not run.log.exists()


def test_push_needs_configure_docker_and_helm_the_pinned_keda(run: Standin) -> None:
    assert run("docker", "build", "-t", IMAGE, ".").returncode == 0
    assert "without `gcloud auth configure-docker`" in run("docker", "push", IMAGE).stderr
    assert (
        run("helm", "repo", "add", "kedacore", "https://kedacore.github.io/charts").returncode == 0
    )
    wrong = run("helm", "install", "keda", "kedacore/keda", "-n", "keda", "--version", "2.20.0")
    assert "the tests pin 2.21.0" in wrong.stderr
