"""Exit codes are a contract: 2 for every usage error, 130 after Ctrl-C, 4 (not 1) for a harness bug."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from tests.conftest import cli_env, run_cli

from cto_harness.cli import _LAZY, cli, main


def _no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


def test_provider_show_of_an_unknown_name_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("provider", "show", "nosuch", env=cli_env(tmp_path))
    assert result.returncode == 2 and "unknown provider 'nosuch'" in result.stderr
    _no_traceback(result.stderr)


@pytest.mark.parametrize("name", ["fake", "command", "codex"])
def test_provider_show_knows_every_provider(name: str, tmp_path: Path) -> None:
    result = run_cli("provider", "show", name, env=cli_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"provider {name} (")


@pytest.mark.parametrize("command", ["verify", "revoke"])
def test_provider_verify_or_revoke_of_an_unknown_name_is_a_usage_error(command: str, tmp_path: Path) -> None:
    result = run_cli("provider", command, "nosuch", env=cli_env(tmp_path))
    assert result.returncode == 2 and "unknown provider 'nosuch'" in result.stderr, result.stdout + result.stderr
    known = run_cli("provider", "verify", "codex", env=cli_env(tmp_path))
    assert known.returncode == 0, known.stderr


def test_provider_discover_of_an_unknown_name_without_source_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("provider", "discover", "nosuch", env=cli_env(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "give both --source URL and --pin SHA" in result.stderr
    _no_traceback(result.stderr)
    assert not (tmp_path / "home" / "discovery" / "nosuch").exists()


def test_report_show_of_a_missing_dir_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("report", "show", str(tmp_path / "missing"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_verify_of_a_missing_or_foreign_dir_is_a_usage_error(tmp_path: Path) -> None:
    missing = run_cli("verify", str(tmp_path / "missing"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert "MISMATCH" not in missing.stderr
    foreign = run_cli("verify", str(tmp_path))
    assert foreign.returncode == 2 and "is not a run dir" in foreign.stderr


@pytest.mark.parametrize("command", [("run",), ("runs", "recover")])
def test_runs_dir_that_is_a_file_is_a_usage_error(command: tuple[str, ...], tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    for target, message in ((a_file, "is not a directory"), (a_file / "runs", "cannot be created")):
        result = run_cli(*command, "--runs-dir", str(target), env=cli_env(tmp_path))
        assert result.returncode == 2, result.stdout + result.stderr
        assert message in result.stderr and "--runs-dir" in result.stderr
        _no_traceback(result.stderr)


def test_runs_dir_from_the_environment_is_checked_too(tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    result = run_cli("run", env=cli_env(tmp_path, CTO_HARNESS_RUNS_DIR=str(a_file)))
    assert result.returncode == 2 and "CTO_HARNESS_RUNS_DIR" in result.stderr


def test_unknown_config_key_is_a_usage_error_for_provider_commands(tmp_path: Path) -> None:
    config = tmp_path / "cto-harness.toml"
    config.write_text("[catalog.case]\npin = 'x'\n[providerz]\n")
    result = run_cli("provider", "list", env=cli_env(tmp_path, CTO_HARNESS_CONFIG=str(config)))
    assert result.returncode == 2 and "providerz" in result.stderr and str(config) in result.stderr


@pytest.fixture
def extra_commands() -> Iterator[None]:
    @click.command("boom-interrupt")
    def interrupt() -> None:
        raise KeyboardInterrupt

    @click.command("boom-bug")
    def bug() -> None:
        raise RuntimeError("a harness bug")

    @click.command("boom-usage")
    def usage() -> None:
        from cto_harness.fixtures import UnknownFixtureError

        raise UnknownFixtureError("no fixture named 'x'")

    for command in (interrupt, bug, usage):
        cli.add_command(command)
    yield
    for name in ("boom-interrupt", "boom-bug", "boom-usage"):
        cli.commands.pop(name, None)
    assert "boom-bug" not in _LAZY


@pytest.mark.parametrize(("command", "code", "line"), [
    ("boom-interrupt", 130, "interrupted"),
    ("boom-bug", 4, "internal error (a harness bug): RuntimeError: a harness bug"),
    ("boom-usage", 2, "Error: no fixture named 'x'"),
])
@pytest.mark.usefixtures("extra_commands")
def test_the_exception_hook(command: str, code: int, line: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command])
    assert info.value.code == code
    assert line in capsys.readouterr().err


def test_help_and_version_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--help"], ["--version"], ["provider", "--help"]):
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 0
    assert "cto-harness" in capsys.readouterr().out


def test_provider_list_is_one_catalog(tmp_path: Path) -> None:
    config = tmp_path / "cto-harness.toml"
    config.write_text(
        "[catalog.mytool]\nsource_url = 'https://example.com/mytool.git'\n"
        "pin = '89abcdef0123456789abcdef0123456789abcdef'\nbuild_command = ['make']\nartifact = 'bin/mytool'\n"
        "adapter = 'command'\n[catalog.mytool.identify]\npatterns = ['^mytool']\n"
        "[catalog.other]\nsource_url = 'https://example.com/other.git'\n"
        "pin = '89abcdef0123456789abcdef0123456789abcdef'\nbuild_command = ['make']\nartifact = 'bin/other'\n"
        "[catalog.other.identify]\npatterns = ['^other']\n")
    env = cli_env(tmp_path, CTO_HARNESS_CONFIG=str(config))
    listed = run_cli("provider", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    kinds = {name: row["kind"] for name, row in rows.items()}
    assert kinds == {"case": "source", "claude-code": "registry", "codex": "registry", "mini-swe-agent": "registry",
                     "pi": "registry", "command": "command", "fake": "builtin", "mytool": "operator",
                     "other": "operator"}
    assert rows["fake"]["admission"] == "builtin"
    assert rows["codex"]["admission"] == "not admitted" and rows["codex"]["version"]
    assert rows["codex"]["pin"].startswith("sha512-") and len(rows["case"]["pin"]) == 40
    assert {n for n, r in rows.items() if r["runnable"]} == set(rows) - {"other"}
    text = run_cli("provider", "list", env=env).stdout
    for name in rows:
        assert name in text

    # install, run and list agree.
    for name, row in rows.items():
        installed = run_cli("provider", "install", name, env=env, timeout=60) if row["kind"] != "registry" else None
        if installed is not None:
            assert installed.returncode == 2 and row["install"] in installed.stderr, installed.stderr
    refused = run_cli("run", "--provider", "other", "--runs-dir", str(tmp_path / "runs"), env=env)
    assert refused.returncode == 2 and 'add adapter = "command"' in refused.stderr
    unknown = run_cli("run", "--provider", "nosuch", "--runs-dir", str(tmp_path / "runs"), env=env)
    valid = unknown.stderr.rsplit("valid providers: ", 1)[1].split()
    assert unknown.returncode == 2 and {v.strip(",") for v in valid} == {n for n, r in rows.items() if r["runnable"]}
