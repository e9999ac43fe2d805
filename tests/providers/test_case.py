"""The Case adapter end to end: the CLI as a subprocess, synthetic `ca` as a real admitted executable."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import CliRun, cli_env, run_cli

from cto_harness.providers.case import ENV_DUMP, write_synthetic_ca
from cto_harness.selfcheck._lab import admit_synthetic
from cto_harness.supply_chain import list_admissions

CASE_STARTED = "case_process_started"
MODEL = ("openai", "synthetic-model")
SECRET = "sk-synthetic-credential-0123456789abcdef"
ALLOWED_ENV = {"PATH", "LANG", "TZ", "HOME", "CASE_DATA_DIR", "PI_CODING_AGENT_DIR", "CTO_HARNESS_RUN_TAG",
               "TMPDIR"}
"""TMPDIR is set by the harness when the provider runs in the bubblewrap sandbox (backend/tmp)."""
SYNTHETIC_REASON = "synthetic provider admitted by the self-check lab: not evidence of real case"


@pytest.fixture
def case_bin(tmp_path: Path) -> Callable[..., Path]:
    """Write a synthetic `ca` and (by default) admit it into the test's harness home."""
    def make(behaviour: str, *, admitted: bool = True) -> Path:
        path = write_synthetic_ca(tmp_path / ("bin" if admitted else "unadmitted-bin"), behaviour)
        if admitted:
            admit_synthetic(path, home=tmp_path / "home")
        else:
            path.write_text(path.read_text() + "# not admitted\n")
        return path
    return make


def case_env(tmp_path: Path, ca: Path | None, *, model: tuple[str, str] | None = MODEL,
             allowlist: list[str] | None = None, **extra: str) -> dict[str, str]:
    config = tmp_path / "cto-harness.toml"
    config.write_text("" if allowlist is None else f"[providers.case]\nadmitted_models = {json.dumps(allowlist)}\n")
    env = cli_env(tmp_path, CTO_HARNESS_CONFIG=str(config),
                  CTO_HARNESS_CASE_BIN=str(ca or tmp_path / "no-such-dir" / "ca"))
    if model is not None:
        env["CTO_HARNESS_CASE_MODEL_PROVIDER"], env["CTO_HARNESS_CASE_MODEL"] = model
    env.update(extra)
    return env


def run_case(runs_dir: Path, env: dict[str, str], *args: str) -> CliRun:
    result = run_cli("run", "--provider", "case", "--runs-dir", str(runs_dir), *args, env=env)
    assert result.report is not None and result.run_dir is not None, result.stderr
    return result


def events(run_dir: Path) -> list[str]:
    return [json.loads(line)["event"] for line in (run_dir / "events.jsonl").read_text().splitlines()]


def outcome(result: CliRun) -> tuple[str, str | None]:
    assert result.report is not None
    return result.report["verdict"], result.report["failure_class"]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_admitted_case_run_passes_isolated_and_redacted(runs_dir: Path, tmp_path: Path,
                                                         case_bin: Callable[..., Path]) -> None:
    ca = case_bin("fix")
    base_url = "http://127.0.0.1:9/v1"
    env = case_env(tmp_path, ca, CTO_HARNESS_CASE_PASS_ENV="SYNTH_API_KEY", SYNTH_API_KEY=SECRET,
                   CANARY_MUST_NOT_LEAK="canary-value", CTO_HARNESS_CASE_PROFILE="tiny",
                   CTO_HARNESS_CASE_MODEL_BASE_URL=base_url, CTO_HARNESS_CASE_MODEL_API_KEY_ENV="SYNTH_API_KEY")
    result = run_case(runs_dir, env)
    report, run_dir = result.report, result.run_dir
    assert report is not None and run_dir is not None
    assert outcome(result) == ("pass", None) and result.returncode == 0, report["reasons"]
    assert report["lane"] == "real" and report["provider"]["admission"] is not None
    # The synthetic ca is the lab's test double: its report says so, not only its help text.
    assert report["provider"]["admission"]["synthetic"] is True
    assert SYNTHETIC_REASON in report["reasons"]
    assert report["model"] == {"provider": "openai", "model": "synthetic-model", "admitted": True,
                               "admitted_by": "env", "base_url": base_url}
    backend, workspace = run_dir / "backend", run_dir / "workspace"

    assert read_json(backend / "case-data" / "config.json") == {
        "version": 1, "projects": "./projects.json",
        "models": {"default": {"provider": "openai", "model": "synthetic-model"}}}
    repo = read_json(backend / "case-data" / "projects.json")["repos"][0]
    assert repo["name"] == "r1-string-slugify" and repo["path"] == str(workspace)
    pristine = read_json(backend / "case-task.pristine.json")
    assert {k: pristine[k] for k in ("id", "status", "repo", "issueType", "mode", "profile")} == {
        "id": "r1-string-slugify", "status": "active", "repo": "r1-string-slugify", "issueType": "freeform",
        "mode": "unattended", "profile": "tiny"}
    assert read_json(run_dir / "task" / "r1-string-slugify.task.json")["status"] == "closing"  # Case rewrote it
    assert (run_dir / "task" / "r1-string-slugify.md").read_text().startswith("# Fix slugify")
    pi_provider = read_json(backend / "pi-agent" / "models.json")["providers"]["openai"]
    # Case is pointed at the egress proxy (same path), never at the endpoint itself.
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", pi_provider["baseUrl"])
    assert pi_provider["apiKey"] == "SYNTH_API_KEY"
    assert report["network"]["endpoint"] == base_url
    assert pi_provider["models"][0]["id"] == "synthetic-model"

    invocation = read_json(backend / "invocation.json")
    assert invocation["argv"] == [str(ca.resolve()), "run", "--task",
                                  str(run_dir / "task" / "r1-string-slugify.task.json"), "--mode", "unattended"]
    assert invocation["cwd"] == str(workspace)
    dumped = read_json(backend / "home" / ENV_DUMP)
    assert set(dumped) <= ALLOWED_ENV | {"SYNTH_API_KEY", "OPENAI_API_KEY"}, set(dumped) - ALLOWED_ENV
    assert "CANARY_MUST_NOT_LEAK" not in dumped
    assert dumped["SYNTH_API_KEY"] == "[redacted]"  # it reached the child, and the evidence is redacted
    # Case's agents (pi-ai) read the key from the model provider's standard variable, not models.json.
    assert dumped["OPENAI_API_KEY"] == "[redacted]"
    assert dumped["HOME"] == str(backend / "home") and dumped["CASE_DATA_DIR"] == str(backend / "case-data")
    assert dumped["PI_CODING_AGENT_DIR"] == str(backend / "pi-agent")
    for path in run_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert SECRET.encode() not in path.read_bytes(), path

    names = events(run_dir)
    assert names.index("provider_preflight") < names.index("model_admission") < names.index(CASE_STARTED)
    assert report["changes"]["files"] == ["strings.py"] and report["changes"]["excluded"] == [".case"]
    assert (backend / "case-state" / "run-log.jsonl").is_file()
    agent = report["agent_result"]
    assert agent["outcome"] == "completed" and agent["runLog"] == "backend/case-state/run-log.jsonl"
    assert agent["eventLog"].startswith("backend/case-state/r1-string-slugify/events/run-")
    assert agent["signals"]["eventLog"] == "completed"
    assert agent["plan"] == "backend/case-state/r1-string-slugify/plan.json"
    assert agent["agents"] == [{"agent": a, "provider": "openai", "model": "synthetic-model"}
                               for a in ("implementer", "verifier")]
    assert agent["containment"]["contained"] is True and agent["containment"]["publishCredentials"] == []
    assert report["usage"]["reported"] is None  # Case prints no usage of its own
    assert run_cli("verify", str(run_dir), env=env).returncode == 0


def test_the_synthetic_ca_is_refused_as_real_case(tmp_path: Path) -> None:
    ca = write_synthetic_ca(tmp_path / "bin", "fix")
    result = run_cli("provider", "admit", "case", "--binary", str(ca), env=cli_env(tmp_path), timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("Error:") and "synthetic test double" in errors[0], errors
    assert list_admissions(tmp_path / "home") == []


def test_missing_binary_blocks_before_case_starts(runs_dir: Path, tmp_path: Path) -> None:
    result = run_case(runs_dir, case_env(tmp_path, None))
    assert result.run_dir is not None
    assert outcome(result) == ("blocked", "provider-unavailable") and result.returncode == 3
    assert "does not exist" in (result.run_dir / "backend" / "provider-unavailable.txt").read_text()
    assert CASE_STARTED not in events(result.run_dir)
    assert not (result.run_dir / "backend" / "case-data").exists()


def test_missing_model_is_recorded_even_when_the_binary_blocks_first(runs_dir: Path, tmp_path: Path) -> None:
    """The executable's failure decides; the unadmitted model still leaves its evidence file."""
    result = run_case(runs_dir, case_env(tmp_path, None, model=None))
    assert result.run_dir is not None and result.report is not None
    assert outcome(result) == ("blocked", "provider-unavailable") and result.returncode == 3
    backend = result.run_dir / "backend"
    assert "does not exist" in (backend / "provider-unavailable.txt").read_text()
    assert "CTO_HARNESS_CASE_MODEL_PROVIDER" in (backend / "provider-model-not-admitted.txt").read_text()
    reasons = result.report["reasons"]
    assert "does not exist" in reasons[0] and any(r.startswith("model not admitted") for r in reasons[1:])
    assert CASE_STARTED not in events(result.run_dir)
    assert run_cli("verify", str(result.run_dir), env=case_env(tmp_path, None)).returncode == 0


@pytest.mark.parametrize(("model", "allowlist", "says"), [
    (None, None, "CTO_HARNESS_CASE_MODEL_PROVIDER (or --model-provider) and CTO_HARNESS_CASE_MODEL"),
    (("openai", ""), None, "CTO_HARNESS_CASE_MODEL (or --model) not set"),
    (("anthropic", "claude-sonnet-4-6"), ["openai/gpt-5.5"], "anthropic/claude-sonnet-4-6 is not on the allowlist"),
    (("openai", "gpt-5.5"), [], "(empty: nothing is admitted)"),
])
def test_model_gate_blocks_before_case_starts(runs_dir: Path, tmp_path: Path, case_bin: Callable[..., Path],
                                              model: tuple[str, str] | None, allowlist: list[str] | None,
                                              says: str) -> None:
    result = run_case(runs_dir, case_env(tmp_path, case_bin("fix"), model=model, allowlist=allowlist))
    assert result.run_dir is not None and result.report is not None
    assert outcome(result) == ("blocked", "model-not-admitted") and result.returncode == 3
    assert says in (result.run_dir / "backend" / "provider-model-not-admitted.txt").read_text()
    assert result.report["model"]["admitted"] is False
    assert CASE_STARTED not in events(result.run_dir) and "model_admission" in events(result.run_dir)
    assert not (result.run_dir / "backend" / "case-data").exists()  # no config.json without an admitted model


def test_unadmitted_binary_blocks_and_unadmitted_lane_is_separate(runs_dir: Path, tmp_path: Path,
                                                                  case_bin: Callable[..., Path]) -> None:
    ca = case_bin("protocol-error", admitted=False)
    blocked = run_case(runs_dir, case_env(tmp_path, ca))
    assert blocked.run_dir is not None
    assert outcome(blocked) == ("blocked", "provider-not-admitted")
    assert "matches no admission record" in (blocked.run_dir / "backend" / "provider-not-admitted.txt").read_text()
    assert CASE_STARTED not in events(blocked.run_dir)

    experiment = run_case(runs_dir, case_env(tmp_path, ca), "--unadmitted")
    report = experiment.report
    assert report is not None
    assert report["lane"] == "unadmitted" and report["provider"]["admission"] is None
    assert outcome(experiment) == ("fail", "agent-protocol-error")  # Case exited 0 on a failed pipeline
    assert report["backend"]["exit_code"] == 0
    agent = report["agent_result"]
    assert agent["outcome"] == "failed" and agent["failedAgent"] == "implementer"
    assert "agent-protocol-error" in agent["failureClasses"]
    assert "AGENT_RESULT start delimiter not found" in agent["errors"]


def test_flags_admit_by_policy_and_fatal_exit_is_a_crash(runs_dir: Path, tmp_path: Path,
                                                         case_bin: Callable[..., Path]) -> None:
    env = case_env(tmp_path, case_bin("fatal"), model=None, allowlist=["openai/synthetic-model"])
    result = run_case(runs_dir, env, "--model-provider", "openai", "--model", "synthetic-model")
    report = result.report
    assert report is not None
    assert report["model"]["admitted_by"] == "policy"
    assert outcome(result) == ("fail", "provider-crashed") and result.returncode == 1
    assert "Case exited 1: Fatal: Model not found: openai/synthetic-model" in report["reasons"]


def test_timeout_env_bounds_case_and_still_grades(runs_dir: Path, tmp_path: Path,
                                                  case_bin: Callable[..., Path]) -> None:
    env = case_env(tmp_path, case_bin("sleep"), CTO_HARNESS_CASE_TIMEOUT_SECONDS="1")
    result = run_case(runs_dir, env)
    assert result.run_dir is not None and result.report is not None
    assert outcome(result) == ("fail", "provider-timeout")
    assert result.report["backend"]["timeout_s"] == 1.0 and result.report["tests"]["ran"] is True
    assert "limit 1 s" in (result.run_dir / "backend" / "provider-timeout.txt").read_text()
    assert CASE_STARTED in events(result.run_dir)


def test_invalid_timeout_blocks_before_case_starts(runs_dir: Path, tmp_path: Path,
                                                   case_bin: Callable[..., Path]) -> None:
    env = case_env(tmp_path, case_bin("fix"), CTO_HARNESS_CASE_TIMEOUT_SECONDS="soon")
    result = run_case(runs_dir, env)
    assert result.run_dir is not None and result.report is not None
    assert outcome(result) == ("blocked", "provider-unavailable") and result.returncode == 3
    assert any("CTO_HARNESS_CASE_TIMEOUT_SECONDS='soon'" in r for r in result.report["reasons"])
    assert CASE_STARTED not in events(result.run_dir)


def test_keyless_endpoint_gives_case_a_placeholder_key_where_pi_reads_it(
        runs_dir: Path, tmp_path: Path, case_bin: Callable[..., Path]) -> None:
    # Real ca's agents (pi-ai streamSimple) read OPENAI_API_KEY for provider openai, never models.json's apiKey;
    # the synthetic ca fails its agents with an AGENT_RESULT parse error without it, as real ca does.
    env = case_env(tmp_path, case_bin("fix"), CTO_HARNESS_CASE_MODEL_BASE_URL="http://127.0.0.1:9/v1")
    result = run_case(runs_dir, env)
    assert outcome(result) == ("pass", None), result.report and result.report["reasons"]
    assert result.run_dir is not None
    dumped = read_json(result.run_dir / "backend" / "home" / ENV_DUMP)
    assert dumped["OPENAI_API_KEY"] == "cto-harness-no-key"


def test_publish_credentials_are_refused_without_opt_in(runs_dir: Path, tmp_path: Path,
                                                        case_bin: Callable[..., Path]) -> None:
    ca = case_bin("fix")
    env = case_env(tmp_path, ca, CTO_HARNESS_CASE_PASS_ENV="GH_TOKEN", GH_TOKEN="ghp_not_a_real_token_0123456789")
    result = run_case(runs_dir, env)
    assert outcome(result) == ("blocked", "provider-unavailable") and result.returncode == 3
    assert result.report is not None and "CTO_HARNESS_CASE_ALLOW_PUBLISH" in result.report["reasons"][0]
    assert result.run_dir is not None and CASE_STARTED not in events(result.run_dir)

    opted = run_case(runs_dir, {**env, "CTO_HARNESS_CASE_ALLOW_PUBLISH": "1"})
    assert outcome(opted) == ("pass", None) and opted.report is not None
    containment = opted.report["agent_result"]["containment"]
    assert containment["contained"] is False and containment["publishCredentials"] == ["GH_TOKEN"]
    assert containment["publishAllowed"] is True


def test_an_agent_on_another_model_fails_closed(runs_dir: Path, tmp_path: Path,
                                                case_bin: Callable[..., Path]) -> None:
    result = run_case(runs_dir, case_env(tmp_path, case_bin("wrong-model")))
    assert outcome(result) == ("fail", "model-not-admitted") and result.report is not None
    assert "verifier openai/some-other-model" in result.report["reasons"][0]


def test_endpoint_failures_are_named_from_the_model_server_log(runs_dir: Path, tmp_path: Path,
                                                               case_bin: Callable[..., Path]) -> None:
    ca = case_bin("protocol-error")
    never_written = tmp_path / "no-calls.jsonl"
    result = run_case(runs_dir, case_env(tmp_path, ca, CTO_HARNESS_MODEL_SERVER_LOG=str(never_written)))
    assert outcome(result) == ("fail", "provider-crashed") and result.report is not None
    assert result.report["reasons"][0] == "Case: the model endpoint received no call (refused or unreachable)"
    assert result.report["agent_result"]["endpoint"]["calls"] == 0

    log = tmp_path / "five-hundred.jsonl"
    entry = {"protocol": "openai-chat", "status": 500, "kind": "server-error",
             "response": {"error": {"message": "upstream exploded"}}}
    log.write_text(json.dumps(entry) + "\n")
    failed = run_case(runs_dir, case_env(tmp_path, ca, CTO_HARNESS_MODEL_SERVER_LOG=str(log)))
    assert outcome(failed) == ("fail", "provider-crashed") and failed.report is not None
    assert "HTTP 500: upstream exploded" in failed.report["reasons"][0]
    assert failed.report["agent_result"]["endpoint"]["failures"] == ["HTTP 500: upstream exploded"]
    assert failed.run_dir is not None and (failed.run_dir / "backend" / "model-server.jsonl").is_file()

    # Without a log the class stays Case's own reading.
    plain = run_case(runs_dir, case_env(tmp_path, ca))
    assert outcome(plain) == ("fail", "agent-protocol-error")
    assert plain.report is not None and "endpoint" not in plain.report["agent_result"]
