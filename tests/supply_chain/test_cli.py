"""The `provider` click group end to end on the local toy provider."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cto_harness.cli.provider import provider_group

from .conftest import Harness, toy_exe


@pytest.fixture
def cli(harness: Harness):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {"CTO_HARNESS_HOME": str(harness.home), "CTO_HARNESS_CONFIG": str(harness.config),
           "CTO_HARNESS_ALLOW_UNADMITTED": None, "CTO_HARNESS_BUILD_ROOT": harness.environ["CTO_HARNESS_BUILD_ROOT"]}

    def invoke(*args: str) -> Result:
        return runner.invoke(provider_group, list(args), env=env, catch_exceptions=False)

    return invoke


def test_route_end_to_end(cli, harness: Harness) -> None:  # type: ignore[no-untyped-def]
    res = cli("discover", "toy")
    assert res.exit_code == 0, res.output
    assert "evidence only" in res.output and harness.repo.pin in res.output

    res = cli("toolchain", "toy", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["ok"] and report["tools"][0]["name"] == "python3"
    assert (harness.home / "toolchains" / "status" / "toy.json").is_file()

    res = cli("build", "toy")
    assert res.exit_code == 0, res.output
    assert "src/generated.txt" in res.output

    res = cli("admit", "toy", "--json")
    assert res.exit_code == 0, res.output
    record = json.loads(res.output)
    digest = record["sha256"]
    assert record["pin"] == harness.repo.pin and record["built_here"] is True

    res = cli("admit", "toy")
    assert res.exit_code == 0 and "already admitted" in res.output

    res = cli("list")
    assert res.exit_code == 0 and "toy" in res.output and digest[:16] in res.output
    rows = {r["name"]: r for r in json.loads(cli("list", "--json").output)}
    assert rows["toy"]["active_sha256"] == digest and "case" in rows

    res = cli("show", "toy", "--json")
    view = json.loads(res.output)
    assert view["active_sha256"] == digest and view["discovery"]["pin"] == harness.repo.pin
    assert len(view["builds"]) == 1 and len(view["admissions"]) == 1

    res = cli("verify", "toy")
    assert res.exit_code == 0 and f"ok {digest}" in res.output

    stored = Path(record["path"])
    stored.chmod(0o755)
    data = bytearray(stored.read_bytes())
    data[0] ^= 0x01
    stored.write_bytes(bytes(data))
    res = cli("verify", "toy")
    assert res.exit_code == 1 and f"MISMATCH {digest}" in res.output

    res = cli("revoke", "toy", "--reason", "tampered")
    assert res.exit_code == 0 and f"revoked toy {digest}" in res.output
    view = json.loads(cli("show", "toy", "--json").output)
    assert view["active_sha256"] is None and view["admissions"][0]["revoked"] is True


def test_show_case_from_builtin_catalog(cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("show", "case")
    assert res.exit_code == 0, res.output
    assert "https://github.com/workos/case.git" in res.output
    assert "7959ac917cdeb0983b4aaa20bb9f42021747fed8" in res.output
    assert "bun run build:binary -> dist/ca" in res.output
    assert "node >= 20, bun" in res.output
    assert "CTO_HARNESS_CASE_BIN" in res.output


def test_show_says_an_admission_is_synthetic(cli, harness: Harness, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cto_harness.providers.case import write_synthetic_ca
    from cto_harness.selfcheck._lab import admit_synthetic

    digest = admit_synthetic(write_synthetic_ca(tmp_path / "bin", "fix"), home=harness.home)
    line = next(line for line in cli("show", "case").output.splitlines() if digest in line)
    assert "synthetic: a self-check test double, never evidence" in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["discover", "toy", "--pin", "main"], "full 40-hex"),
        (["discover", "toy", "--pin", "1" * 40], "does not exist"),
        (["discover", "nosuch"], "--source URL and --pin SHA"),
        (["build", "nosuch"], "no catalog entry named 'nosuch'"),
        (["admit", "toy"], "no successful build"),
        (["admit", "toy", "--binary", "/"], "is a directory"),
        (["revoke", "toy"], "no active admission"),
        (["show", "nosuch"], "unknown provider"),
        (["toolchain", "toy", "--remove"], "names no bun_version"),
    ],
)
def test_refusals_are_one_line_errors(cli, args: list[str], needle: str) -> None:  # type: ignore[no-untyped-def]
    res = cli(*args)
    # An unknown provider name is the caller's mistake: a usage error (2), like every usage error.
    assert res.exit_code == (2 if "nosuch" in args[1:2] else 1), res.output
    assert needle in res.output
    error_lines = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1


def test_admit_expect_sha256_refusal(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    exe = toy_exe(tmp_path / "toy")
    res = cli("admit", "toy", "--binary", str(exe), "--expect-sha256", "f" * 64)
    assert res.exit_code == 1 and "digest mismatch" in res.output


def test_invalid_config_is_a_clear_error(cli, harness: Harness) -> None:  # type: ignore[no-untyped-def]
    harness.config.write_text('[catalog.toy]\npin = "short"\n')
    res = cli("list")
    assert res.exit_code == 1 and "catalog entry 'toy'" in res.output


def test_toolchain_missing_tool_exits_nonzero(cli, harness: Harness) -> None:  # type: ignore[no-untyped-def]
    harness.config.write_text(harness.config.read_text().replace(
        'name = "python3"', 'name = "no-such-tool-xyz"'))
    res = cli("toolchain", "toy")
    assert res.exit_code == 1 and "no-such-tool-xyz missing" in res.output
