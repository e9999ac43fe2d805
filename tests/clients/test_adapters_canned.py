"""Each real-client adapter against a stand-in executable that prints canned protocol output.

The stand-ins run in the ``unadmitted`` lane (``--unadmitted``): what is tested here is
each adapter's argv, isolated env and files, and how it reads the client's completion
signal. The real clients are exercised in ``test_real_clients.py``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from cto_harness.providers import RunOptions
from cto_harness.providers._gates import ProviderSettingError, env_var
from cto_harness.providers.codex import config_toml
from cto_harness.providers.command import render_args
from cto_harness.runner import RunRequest, RunResult, run_stage2

FIX = 'import re\\n\\ndef slugify(text):\\n    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")\\n'
OUTPUT: dict[tuple[str, str], Any] = {
    ("pi", "ok"): {"type": "agent_end", "messages": [{"role": "assistant", "stopReason": "stop",
                                                      "usage": {"input": 100, "output": 7, "cost": {"total": 0.5}},
                                                      "content": [{"type": "text", "text": "done"}]}]},
    ("pi", "fail"): {"type": "agent_end", "messages": [{"role": "assistant", "stopReason": "error",
                                                        "errorMessage": "Connection error."}]},
    ("claude-code", "ok"): {"type": "result", "is_error": False, "num_turns": 3, "total_cost_usd": 0.25,
                            "usage": {"input_tokens": 100, "output_tokens": 7}, "result": "done"},
    ("claude-code", "fail"): {"type": "result", "is_error": True, "result": "API Error"},
    ("codex", "ok"): {"type": "turn.completed", "usage": {"input_tokens": 100, "output_tokens": 7}},
    ("codex", "fail"): {"type": "turn.failed", "error": {"message": "stream disconnected"}},
    ("mini-swe-agent", "ok"): {"info": {"exit_status": "Submitted", "model_stats": {"instance_cost": 0.5,
                                                                                      "api_calls": 3}},
                               "messages": [{"extra": {"response": {"usage": {"prompt_tokens": 100,
                                                                              "completion_tokens": 7}}}}]},
    ("mini-swe-agent", "fail"): {"info": {"exit_status": "LimitsExceeded", "model_stats": {}}, "messages": []},
}
FAIL_CLASS = {"pi": "provider-crashed", "claude-code": "agent-reported-failure",
              "codex": "agent-reported-failure", "mini-swe-agent": "agent-reported-failure"}
CLIENTS = ("claude-code", "codex", "mini-swe-agent", "pi")
PROXIED = r"http://127\.0\.0\.1:\d+"
"""Clients are pointed at the egress proxy's address (see docs/security.md, Egress)."""


def stand_in(tmp_path: Path, client: str, behaviour: str) -> Path:
    """An executable that records its argv/env in $HOME, fixes the fixture and prints canned output."""
    out = OUTPUT.get((client, behaviour))
    exe = tmp_path / f"{client}-{behaviour}"
    exe.write_text(f"""#!{sys.executable}
import json, os, sys
home = os.environ["HOME"]
json.dump({{"argv": sys.argv, "env": dict(os.environ)}}, open(os.path.join(home, "seen.json"), "w"))
if {behaviour!r} != "noprotocol":
    open("strings.py", "w").write({FIX!r}.replace("\\\\n", "\\n"))
out = {json.dumps(out)!r}
if {client!r} == "mini-swe-agent" and out != "null":
    open(sys.argv[sys.argv.index("-o") + 1], "w").write(out)
elif out != "null":
    print("noise that is not json")
    print(out)
""")
    exe.chmod(0o755)
    return exe


def run(client: str, exe: Path | None, tmp_path: Path, *, model: bool = True, **extra: str) -> RunResult:
    environ = {"PATH": "/usr/bin:/bin", "CTO_HARNESS_HOME": str(tmp_path / "home"),
               "CTO_HARNESS_CONFIG": "/dev/null", "LEAKY_SECRET": "must-not-reach-the-child", **extra}
    if exe is not None:
        environ[env_var(client, "BIN")] = str(exe)
    if model:
        environ[env_var(client, "MODEL_PROVIDER")] = "scripted"
        environ[env_var(client, "MODEL")] = "scripted-1"
        environ.setdefault(env_var(client, "BASE_URL"), "http://127.0.0.1:9/v1")
    return run_stage2(RunRequest(provider=client, runs_dir=tmp_path / "runs", environ=environ,
                                 options=RunOptions(unadmitted=True, timeout_s=60)))


def seen(result: RunResult) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((result.run_dir / "backend" / "home" / "seen.json").read_text())
    return data


@pytest.mark.parametrize("client", CLIENTS)
def test_completion_signal_and_usage_parsed(client: str, tmp_path: Path) -> None:
    result = run(client, stand_in(tmp_path, client, "ok"), tmp_path)
    report = result.report
    assert (report.verdict, report.failure_class, report.lane) == ("pass", None, "unadmitted"), report.reasons
    reported = report.usage.reported
    assert reported is not None
    assert (reported.input_tokens, reported.output_tokens) == (100, 7)
    env = seen(result)["env"]
    assert "LEAKY_SECRET" not in env
    assert env["HOME"] == str(result.run_dir / "backend" / "home")


@pytest.mark.parametrize("client", CLIENTS)
def test_reported_failure_fails_even_with_a_good_patch(client: str, tmp_path: Path) -> None:
    report = run(client, stand_in(tmp_path, client, "fail"), tmp_path).report
    assert (report.verdict, report.failure_class) == ("fail", FAIL_CLASS[client])


@pytest.mark.parametrize("client", CLIENTS)
def test_missing_completion_signal_is_a_protocol_error(client: str, tmp_path: Path) -> None:
    report = run(client, stand_in(tmp_path, client, "silent"), tmp_path).report
    assert (report.verdict, report.failure_class) == ("fail", "agent-protocol-error")


@pytest.mark.parametrize("client", CLIENTS)
def test_no_model_named_blocks_before_start(client: str, tmp_path: Path) -> None:
    report = run(client, stand_in(tmp_path, client, "ok"), tmp_path, model=False).report
    assert (report.verdict, report.failure_class) == ("blocked", "model-not-admitted")
    assert report.backend.process_started is False


@pytest.mark.parametrize("client", CLIENTS)
def test_nothing_installed_blocks_as_unavailable(client: str, tmp_path: Path) -> None:
    report = run(client, None, tmp_path).report
    assert (report.verdict, report.failure_class) == ("blocked", "provider-unavailable")


def test_claude_code_argv_and_env(tmp_path: Path) -> None:
    result = run("claude-code", stand_in(tmp_path, "claude-code", "ok"), tmp_path,
                 CTO_HARNESS_CLAUDE_CODE_BASE_URL="http://127.0.0.1:9")
    argv, env = seen(result)["argv"], seen(result)["env"]
    assert "--allowedTools=Bash,Read,Edit" in argv and argv[argv.index("--model") + 1] == "scripted-1"
    assert argv[argv.index("-p") + 1].startswith("# Fix slugify")
    assert re.fullmatch(PROXIED + "", env["ANTHROPIC_BASE_URL"])  # the egress proxy, not the endpoint itself
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1" and env["CLAUDE_CODE_MAX_RETRIES"] == "0"


def test_codex_argv_and_config(tmp_path: Path) -> None:
    result = run("codex", stand_in(tmp_path, "codex", "ok"), tmp_path)
    argv = seen(result)["argv"]
    for flag in ("--json", "--skip-git-repo-check", "plugins", "unbounded_connection_retries"):
        assert flag in argv
    config = (result.run_dir / "backend" / "codex-home" / "config.toml").read_text()
    assert 'wire_api = "responses"' in config and re.search(f'base_url = "{PROXIED}/v1"', config)


def test_codex_config_never_overrides_a_builtin_provider_id() -> None:
    text = config_toml(model="m", model_provider="openai", url="http://127.0.0.1:1/v1")
    assert 'model_provider = "openai-endpoint"' in text and "[analytics]\nenabled = false" in text


def test_pi_models_json_and_settings(tmp_path: Path) -> None:
    result = run("pi", stand_in(tmp_path, "pi", "ok"), tmp_path)
    agent = result.run_dir / "backend" / "pi-agent"
    models = json.loads((agent / "models.json").read_text())
    assert re.fullmatch(PROXIED + "/v1", models["providers"]["scripted"]["baseUrl"])
    assert json.loads((agent / "settings.json").read_text())["retry"]["enabled"] is False
    assert seen(result)["env"]["PI_OFFLINE"] == "1"


def test_mini_swe_agent_argv_and_offline_env(tmp_path: Path) -> None:
    result = run("mini-swe-agent", stand_in(tmp_path, "mini-swe-agent", "ok"), tmp_path)
    argv, env = seen(result)["argv"], seen(result)["env"]
    assert argv[argv.index("-m") + 1] == "openai/scripted-1"
    assert any(re.fullmatch(f"model.model_kwargs.api_base={PROXIED}/v1", a) for a in argv)
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True" and env["MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT"] == "1"


def test_passed_credentials_are_redacted_from_evidence(tmp_path: Path) -> None:
    result = run("pi", stand_in(tmp_path, "pi", "ok"), tmp_path, OPENAI_API_KEY="sk-very-secret-value",
                 CTO_HARNESS_PI_PASS_ENV="OPENAI_API_KEY")
    # The child got the key (its own record of it is redacted in the evidence like every file).
    assert seen(result)["env"]["CTO_HARNESS_PI_ENDPOINT_KEY"] == "[redacted]"
    for path in result.run_dir.rglob("*"):
        if path.is_file():
            assert b"sk-very-secret-value" not in path.read_bytes(), path


def test_command_template_placeholders() -> None:
    assert render_args("--dir {workspace} '{prompt_file}'", {"workspace": "/w", "prompt_file": "/p q"}) == [
        "--dir", "/w", "/p q"]
    with pytest.raises(ProviderSettingError, match="unknown placeholder"):
        render_args("{nope}", {})


def test_command_provider_judged_by_diff_and_tests(tmp_path: Path) -> None:
    agent = tmp_path / "agent.sh"
    agent.write_text(f"#!/bin/sh\nprintf '{FIX}' > strings.py\n")
    agent.chmod(0o755)
    result = run("command", agent, tmp_path, CTO_HARNESS_COMMAND_ARGS="{task_file}")
    assert (result.report.verdict, result.report.failure_class) == ("pass", None)
    noop = tmp_path / "noop.sh"
    noop.write_text("#!/bin/sh\nexit 0\n")
    noop.chmod(0o755)
    assert run("command", noop, tmp_path).report.failure_class == "no-changes"
