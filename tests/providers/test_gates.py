"""The shared real-provider gates: naming, model admission, timeout, credentials, env allowlist."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cto_harness.core._config import HarnessConfig, ProviderConfig
from cto_harness.providers import RunOptions
from cto_harness.providers._gates import (
    ProviderSettingError,
    admit_model,
    child_env,
    env_var,
    pass_through_credentials,
    provider_timeout,
)


def ctx(environ: dict[str, str] | None = None, allowlist: list[str] | None = None, **options: Any) -> Any:
    config = HarnessConfig(providers={"mini-swe-agent": ProviderConfig(admitted_models=allowlist)})
    return SimpleNamespace(environ=environ or {}, options=RunOptions(**options), config=config)


def test_env_var_names_follow_the_provider() -> None:
    assert env_var("case", "BIN") == "CTO_HARNESS_CASE_BIN"
    assert env_var("mini-swe-agent", "TIMEOUT_SECONDS") == "CTO_HARNESS_MINI_SWE_AGENT_TIMEOUT_SECONDS"


@pytest.mark.parametrize(("environ", "options", "allowlist", "admitted_by"), [
    ({"CTO_HARNESS_MINI_SWE_AGENT_MODEL_PROVIDER": "openai", "CTO_HARNESS_MINI_SWE_AGENT_MODEL": "m"}, {}, None,
     "env"),
    ({}, {"model_provider": "openai", "model": "m"}, None, "flag"),
    ({"CTO_HARNESS_MINI_SWE_AGENT_MODEL_PROVIDER": "openai"}, {"model": "m"}, None, "flag"),
    ({}, {"model_provider": "openai", "model": "m"}, ["openai/m"], "policy"),
])
def test_model_admitted_and_how(environ: dict[str, str], options: dict[str, str], allowlist: list[str] | None,
                                admitted_by: str) -> None:
    model, blocked = admit_model(ctx(environ, allowlist, **options), "mini-swe-agent")
    assert blocked is None
    assert (model.provider, model.model, model.admitted, model.admitted_by) == ("openai", "m", True, admitted_by)


def test_flag_overrides_env_and_allowlist_is_checked_on_the_result() -> None:
    environ = {"CTO_HARNESS_MINI_SWE_AGENT_MODEL_PROVIDER": "openai", "CTO_HARNESS_MINI_SWE_AGENT_MODEL": "ok"}
    model, blocked = admit_model(ctx(environ, ["openai/ok"], model="other"), "mini-swe-agent")
    assert blocked is not None and blocked.failure_class == "model-not-admitted"
    assert blocked.evidence_file == "provider-model-not-admitted.txt" and "openai/other" in blocked.reason
    assert model.admitted is False and model.model == "other"


def test_timeout_precedence_and_invalid_values() -> None:
    var = "CTO_HARNESS_MINI_SWE_AGENT_TIMEOUT_SECONDS"
    assert provider_timeout(ctx(), "mini-swe-agent", 1800) == 1800
    assert provider_timeout(ctx({var: "12.5"}), "mini-swe-agent", 1800) == 12.5
    assert provider_timeout(ctx({var: "12.5"}, timeout_s=3.0), "mini-swe-agent", 1800) == 3.0
    for bad in ("abc", "0", "-1", "nan", "inf"):
        with pytest.raises(ProviderSettingError, match=var):
            provider_timeout(ctx({var: bad}), "mini-swe-agent", 1800)


def test_pass_env_returns_named_values_and_refuses_bad_names() -> None:
    var = "CTO_HARNESS_MINI_SWE_AGENT_PASS_ENV"
    environ = {var: "KEY_A, KEY_B,", "KEY_A": "a-value", "KEY_B": "b-value", "OTHER": "x"}
    assert pass_through_credentials(ctx(environ), "mini-swe-agent") == {"KEY_A": "a-value", "KEY_B": "b-value"}
    for names, message in (("MISSING", "not set"), ("PATH", "set by the harness"), ("bad-name", "not an environment"),
                           ("CTO_HARNESS_HOME", "set by the harness")):
        with pytest.raises(ProviderSettingError, match=message):
            pass_through_credentials(ctx({var: names}), "mini-swe-agent")


def test_child_env_is_an_allowlist(tmp_path: Path) -> None:
    environ = {"PATH": "/x/bin", "LANG": "de_DE.UTF-8", "SECRET": "s", "ANTHROPIC_API_KEY": "k", "HOME": "/root"}
    env = child_env(ctx(environ), home=tmp_path, extra={"CASE_DATA_DIR": "/d"}, credentials={"KEY": "v"})
    assert env == {"PATH": "/x/bin", "LANG": "de_DE.UTF-8", "TZ": "UTC", "HOME": str(tmp_path),
                   "CASE_DATA_DIR": "/d", "KEY": "v"}
