"""cto-harness.toml: an unknown key is a usage error, never "no policy"."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import cli_env, run_cli

from cto_harness.core import ConfigError, load_config


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cto-harness.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_misspelt_allowlist_key_is_an_error_naming_key_and_file(tmp_path: Path) -> None:
    path = _config(tmp_path, '[providers.case]\nadmitted_modelz = ["openai/gpt-4.1"]\n')
    with pytest.raises(ConfigError) as info:
        load_config({"CTO_HARNESS_CONFIG": str(path)})
    assert "providers.case.admitted_modelz" in str(info.value)
    assert str(path) in str(info.value)
    assert "admitted_models" in str(info.value)


@pytest.mark.parametrize("text", ['providerz = {}\n', 'source = "elsewhere"\n'])
def test_an_unknown_top_level_key_is_an_error(text: str, tmp_path: Path) -> None:
    path = _config(tmp_path, text)
    with pytest.raises(ConfigError, match="unknown key"):
        load_config({"CTO_HARNESS_CONFIG": str(path)})


def test_known_keys_load(tmp_path: Path) -> None:
    path = _config(tmp_path, '[providers.case]\nadmitted_models = ["openai/gpt-4.1"]\n')
    config = load_config({"CTO_HARNESS_CONFIG": str(path)})
    assert config.provider("case").admitted_models == ["openai/gpt-4.1"]
    assert config.source == str(path)


def test_run_with_an_unknown_key_is_a_usage_error(tmp_path: Path) -> None:
    path = _config(tmp_path, '[providers.fake]\nadmitted_modelz = []\n')
    runs = tmp_path / "runs"
    result = run_cli("run", "--runs-dir", str(runs), env=cli_env(tmp_path, CTO_HARNESS_CONFIG=str(path)))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "providers.fake.admitted_modelz" in result.stderr and str(path) in result.stderr
    assert not runs.exists() or not any(runs.iterdir())
