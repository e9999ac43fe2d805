"""Provider settings: one pydantic model per provider, built from CTO_HARNESS_<P>_*; bad values block."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.clients.test_adapters_canned import CLIENTS, run, stand_in
from tests.conftest import cli_env, run_cli

from cto_harness.providers import ProviderSettingError, RunOptions
from cto_harness.providers._settings import ClientSettings
from cto_harness.providers.case import CaseEnv
from cto_harness.providers.fake import FakeSettings
from cto_harness.providers.pi import PiSettings


def test_fields_come_from_their_variables_and_defaults_apply() -> None:
    settings = PiSettings.from_environ({"CTO_HARNESS_PI_TIMEOUT_SECONDS": " 12.5 ", "CTO_HARNESS_PI_API":
                                        "openai-responses", "CTO_HARNESS_PI_BASE_URL": "http://127.0.0.1:9/v1/",
                                        "CTO_HARNESS_CODEX_API": "ignored"}, "pi")
    assert (settings.timeout_seconds, settings.api, settings.base_url) == (12.5, "openai-responses",
                                                                          "http://127.0.0.1:9/v1")
    assert settings.timeout(RunOptions()) == 12.5 and settings.timeout(RunOptions(timeout_s=3)) == 3
    assert PiSettings.from_environ({}, "pi").timeout(RunOptions()) == ClientSettings.default_timeout_s
    assert FakeSettings.from_environ({}, "fake").timeout(RunOptions()) == 300.0
    case = CaseEnv.from_environ({"CTO_HARNESS_CASE_PROFILE": "tiny", "CTO_HARNESS_CASE_HOME": "/elsewhere"}, "case")
    assert (case.profile, case.timeout(RunOptions()), case.allow_publish) == ("tiny", 1800.0, False)


@pytest.mark.parametrize(("provider", "cls", "variable", "value", "message"), [
    ("fake", FakeSettings, "CTO_HARNESS_FAKE_TIMEOUT_SECONDS", "abc", "is not a positive number of seconds"),
    ("fake", FakeSettings, "CTO_HARNESS_FAKE_TIMEOUT_SECONDS", "inf", "is not a positive number of seconds"),
    ("pi", PiSettings, "CTO_HARNESS_PI_API", "telepathy", "openai-completions"),
    ("pi", PiSettings, "CTO_HARNESS_PI_BASE_URL", "ftp://x", "is not an http(s) URL"),
    ("codex", ClientSettings, "CTO_HARNESS_CODEX_TIMEOUT_SECONDS", "0", "is not a positive number"),
    ("case", CaseEnv, "CTO_HARNESS_CASE_PROFILE", "huge", "'standard' or 'tiny'"),
    ("case", CaseEnv, "CTO_HARNESS_CASE_MODEL_BASE_URL", "file:///etc", "is not an http(s) URL"),
    ("case", CaseEnv, "CTO_HARNESS_CASE_ALLOW_PUBLISH", "maybe", "boolean"),
    ("case", CaseEnv, "CTO_HARNESS_CASE_TIMEOUT_SECONDS", "nan", "is not a positive number of seconds"),
])
def test_an_unusable_value_names_its_variable(provider: str,
                                              cls: type[ClientSettings] | type[FakeSettings] | type[CaseEnv],
                                              variable: str, value: str, message: str) -> None:
    with pytest.raises(ProviderSettingError) as info:
        cls.from_environ({variable: value}, provider)
    assert str(info.value).startswith(f"{variable}={value!r}") and message in str(info.value)


def test_fake_timeout_that_is_not_a_number_blocks_the_run(runs_dir: Path, tmp_path: Path) -> None:
    result = run_cli("run", "--runs-dir", str(runs_dir), env=cli_env(tmp_path, CTO_HARNESS_FAKE_TIMEOUT_SECONDS="abc"))
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.report is not None and result.run_dir is not None
    assert (result.report["verdict"], result.report["failure_class"]) == ("blocked", "provider-unavailable")
    assert "CTO_HARNESS_FAKE_TIMEOUT_SECONDS='abc'" in result.report["reasons"][0]
    assert result.report["backend"]["process_started"] is False
    assert "provider_process_started" not in (result.run_dir / "events.jsonl").read_text()


@pytest.mark.parametrize("client", CLIENTS)
def test_each_client_blocks_on_a_bad_setting(client: str, tmp_path: Path) -> None:
    variable = f"CTO_HARNESS_{client.upper().replace('-', '_')}_TIMEOUT_SECONDS"
    result = run(client, stand_in(tmp_path, client, "ok"), tmp_path, **{variable: "soon"})
    report = result.report
    assert (report.verdict, report.failure_class) == ("blocked", "provider-unavailable")
    assert f"{variable}='soon'" in report.reasons[0]
    assert not (result.run_dir / "home" / "seen.json").exists()
    events = [json.loads(line)["event"] for line in (result.run_dir / "events.jsonl").read_text().splitlines()]
    assert "provider_process_started" not in events


def test_pi_api_is_validated_by_its_model(tmp_path: Path) -> None:
    result = run("pi", stand_in(tmp_path, "pi", "ok"), tmp_path, CTO_HARNESS_PI_API="telepathy")
    assert result.report.failure_class == "provider-unavailable"
    assert "CTO_HARNESS_PI_API='telepathy'" in result.report.reasons[0]
