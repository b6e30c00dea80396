"""Configuration: the built-in default works; a bad file names the field and the reason."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from dispatcher.cli import cli
from dispatcher.config import ConfigError, default_config_text, load_settings, parse_settings


def test_builtin_default_is_valid() -> None:
    settings = load_settings(environ={})
    assert [c.name for c in settings.classes] == ["small", "medium", "large"]


def variant(**changes: object) -> str:
    raw = yaml.safe_load(default_config_text())
    for dotted, value in changes.items():
        node = raw
        parts = dotted.split("__")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[parts[-1]] = value
    return yaml.safe_dump(raw)


@pytest.mark.parametrize(
    ("changes", "field", "why"),
    [
        ({"classes__0__max_linger_seconds": -1}, "classes.0.max_linger_seconds", "greater than"),
        ({"classes__1__spot": "maybe"}, "classes.1.spot", "boolean"),
        ({"classes__0__name": "Small Class"}, "classes.0.name", "pattern"),
        ({"classes__1__max_size_bytes": 10}, "classes", "increase"),
        ({"classes__0__max_size_bytes": None}, "classes", "only the last class"),
        ({"classes__0__cpu": "lots"}, "classes.0.cpu", "pattern"),
        ({"limits__workflows_per_second": 0}, "limits.workflows_per_second", "greater than"),
        ({"orders__max_workflow_object_bytes": 4096}, "orders", "one order always fits"),
        # above Argo's 1 MiB, with etcd's 1.5 MiB request limit needing room for status
        ({"orders__max_workflow_object_bytes": 1024 * 1024 + 1}, "orders", "less than or equal"),
        ({"orders__allowed_uri_schemes": []}, "orders.allowed_uri_schemes", "at least 1"),
        ({"classes__0__surprise": 1}, "classes.0.surprise", "Extra inputs"),
        ({"namespace": "Not_A_Namespace"}, "namespace", "pattern"),
    ],
)
def test_bad_config_names_field_and_reason(
    changes: dict[str, object], field: str, why: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(variant(**changes), source="f.yaml", environ={})
    message = str(caught.value)
    assert "f.yaml" in message and field in message and why in message, message


def test_not_yaml_and_not_mapping() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_settings("a: [", source="x", environ={})
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_settings("- 1", source="x", environ={})


def test_environment_overrides_scalars() -> None:
    env = {"DISPATCHER_LIMITS__WORKFLOWS_PER_SECOND": "12.5", "DISPATCHER_ENVIRONMENT": "prod"}
    settings = parse_settings(default_config_text(), source="d", environ=env)
    assert settings.limits.workflows_per_second == 12.5
    assert settings.environment == "prod"


def test_bad_environment_override_is_reported() -> None:
    env = {"DISPATCHER_LIMITS__BURST": "many"}
    with pytest.raises(ConfigError, match=r"limits\.burst"):
        parse_settings(default_config_text(), source="d", environ=env)


def _cli_envvars(command: click.Command) -> set[str]:
    names = {str(p.envvar) for p in command.params if isinstance(p.envvar, str)}
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            names |= _cli_envvars(sub)
    return names


def test_cli_variables_and_config_overrides_do_not_share_names() -> None:
    cli_vars = {v for v in _cli_envvars(cli) if v.startswith("DISPATCHER_")}
    assert {"DISPATCHER_DEAD_LETTER_SUBSCRIPTION", "DISPATCHER_ORDERS_TOPIC"} <= cli_vars
    env = dict.fromkeys(cli_vars, "projects/p/subscriptions/x")
    del env["DISPATCHER_CONFIG"]  # the file itself, not an override
    env["DISPATCHER_LIMITS__BURST"] = "7"
    settings = parse_settings(default_config_text(), source="d", environ=env)
    assert settings.limits.burst == 7
    only_override = {"DISPATCHER_LIMITS__BURST": "7"}
    expected = parse_settings(default_config_text(), source="d", environ=only_override)
    assert settings.model_dump() == expected.model_dump()


def test_misspelt_section_override_is_refused_not_ignored() -> None:
    with pytest.raises(ConfigError, match="workflow_per_second"):
        parse_settings(
            default_config_text(),
            source="d",
            environ={"DISPATCHER_LIMITS__WORKFLOW_PER_SECOND": "3"},
        )


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.yaml", environ={})


def test_cli_stops_with_the_field_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(variant(classes__0__max_orders_per_workflow=0))
    result = CliRunner().invoke(cli, ["config", "validate", "--config", str(bad)])
    assert result.exit_code == 1
    assert "classes.0.max_orders_per_workflow" in result.output


@pytest.mark.parametrize("name", ["dev", "staging", "prod"])
def test_example_files_are_valid(name: str) -> None:
    path = Path(__file__).parents[2] / "config" / f"{name}.yaml"
    settings = load_settings(path, environ={})
    assert settings.environment == name
