"""Where the local stack looks for its builds and keeps its state.

Why: the local stack (dispatcher.local) and the tests must find the same cached builds without
ever starting one, the product's stack must keep its state apart from the test cluster's, and
servers/pubsub/build.sh must still reach the cache key with a bare python3 (no site-packages).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dispatcher.local import paths, pubsub, tools


def test_the_local_stack_keeps_its_own_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BURST_DISPATCHER_CACHE", str(tmp_path))
    monkeypatch.delenv("BURST_CLUSTER_STATE_DIR", raising=False)
    monkeypatch.delenv("BURST_LOCAL_STATE_DIR", raising=False)
    assert paths.local_state_dir() == tmp_path / "local"
    assert paths.state_dir() == tmp_path / "cluster" / "run"
    monkeypatch.setenv("BURST_LOCAL_STATE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("BURST_CLUSTER_STATE_DIR", str(tmp_path / "tests"))
    assert paths.local_state_dir() == tmp_path / "mine"
    assert paths.state_dir() == tmp_path / "tests"


def test_nothing_built_is_an_error_not_a_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BURST_DISPATCHER_CACHE", str(tmp_path))
    with pytest.raises(paths.NotBuiltError, match=re.escape("servers/cluster/build.sh")):
        paths.bin_dir()
    with pytest.raises(tools.ToolUnavailable, match="kubectl not built"):
        tools.built_kubectl()
    assert pubsub.binary("fast") is None
    assert list(tmp_path.iterdir()) == []


def test_build_sh_reaches_the_cache_key_without_site_packages() -> None:
    script = paths.SERVERS_DIR / "pubsub" / "binaries.py"
    proc = subprocess.run(
        [sys.executable, "-I", "-S", str(script), "dir"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(pubsub.build_dir())


def test_the_pubsub_key_covers_the_sources_by_relative_path() -> None:
    hashed = [p.relative_to(pubsub.HERE).as_posix() for p in pubsub._hashed_files()]
    assert hashed[0] == "build.sh"
    assert {name.split("/")[0] for name in hashed[1:]} == set(pubsub.SERVERS.values())


def test_the_podmonitoring_stand_in_ships_with_the_package() -> None:
    crd = tools.podmonitoring_crd()
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "podmonitorings.monitoring.googleapis.com"
