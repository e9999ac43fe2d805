"""The WorkOS Case adapter: ``ca run --task <run>/task/<slug>.task.json --mode unattended``.

Case runs only as admitted bytes (``CTO_HARNESS_CASE_BIN`` or the admitted store), only
with an explicitly admitted model written into its isolated ``CASE_DATA_DIR`` as
``models.default``, with an isolated ``HOME`` and an environment built from an allowlist
(PATH, LANG, TZ, HOME, CASE_DATA_DIR, PI_CODING_AGENT_DIR when an endpoint is declared,
and the credentials named in ``CTO_HARNESS_CASE_PASS_ENV``). Its cwd is the fixture
workspace; its state dir ``.case/`` is kept as evidence under ``backend/case-state/``.
The outcome is read from Case's completion signals (``_outcome``); the harness's
own diff and tests decide a pass. See ``docs/case.md``.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from cto_harness.core import ProcessResult
from cto_harness.evidence import utc_now
from cto_harness.providers._agent_result import read_capped
from cto_harness.providers._client_common import keep_model_server_log, read_model_server_log
from cto_harness.providers._gates import (
    ProviderSettingError,
    child_env,
    env_var,
    pass_through_credentials,
    preflight_gate,
)
from cto_harness.providers._protocol import Gate, Invocation, Outcome, RunContext
from cto_harness.providers._settings import HttpUrl, ProviderSettings
from cto_harness.providers.case._outcome import evidence_path, interpret_case, model_mismatches, read_signals
from cto_harness.providers.case._task import (
    DEFAULT_MODEL_API,
    NO_API_KEY,
    PI_KEY_ENV,
    task_slug,
    write_case_data,
    write_home,
    write_pi_models,
    write_task_pair,
)

NAME = "case"
STATE_DIR = ".case"
STATE_EVIDENCE_DIR = "case-state"
PROCESS_EVENT = "case_process_started"
_CHILD_VARS = frozenset({"CASE_DATA_DIR", "PI_CODING_AGENT_DIR"})
PUBLISH_CREDENTIALS = frozenset({
    "GH_TOKEN", "GITHUB_TOKEN", "GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN", "COPILOT_GITHUB_TOKEN",
    "GIT_ASKPASS", "SSH_AUTH_SOCK", "GIT_SSH_COMMAND", "GIT_CONFIG_GLOBAL", "GH_CONFIG_DIR",
})
"""What would let Case's closer push or open a PR (``gh pr create``); refused in PASS_ENV
unless ``CTO_HARNESS_CASE_ALLOW_PUBLISH=1``."""


class CaseEnv(ProviderSettings):
    """Every ``CTO_HARNESS_CASE_*`` variable, validated in one place like every provider's.

    ``bin``, ``model_provider`` and ``model`` are read by the admission gates themselves; they
    are fields here so that a bad value of any Case variable is refused the same way.
    """

    default_timeout_s: ClassVar[float] = 1800.0
    """Case's own per-agent limit (600 s, retried) does not bound a hung model call."""

    bin: str | None = None
    model_provider: str | None = None
    model: str | None = None
    profile: Literal["standard", "tiny"] = "standard"
    """The Case task profile (PROFILES)."""
    model_base_url: HttpUrl | None = None
    """An endpoint to declare to Case's pi as a custom provider (else pi's built-in ones)."""
    model_api: str = DEFAULT_MODEL_API
    """pi ``api`` of the endpoint declared by MODEL_BASE_URL."""
    model_api_key_env: str | None = None
    """The credential (also named in PASS_ENV) that pi sends as the endpoint's API key."""
    pass_env: str | None = None
    allow_publish: bool = False
    """Lets PASS_ENV name what would let Case's closer push or open a pull request."""


@dataclass(frozen=True)
class CaseSettings:
    """The validated ``CTO_HARNESS_CASE_*`` settings of one run, with the credentials they name."""

    timeout_s: float
    profile: str
    base_url: str | None
    model_api: str
    api_key_env: str | None
    credentials: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    allow_publish: bool = False


def case_settings(ctx: RunContext) -> CaseSettings:
    """Read and validate every Case setting from the caller's environment snapshot.

    Raises:
        ProviderSettingError: a setting is present but unusable.
    """
    env = CaseEnv.from_environ(ctx.environ, NAME)
    credentials = pass_through_credentials(ctx, NAME, reserved=_CHILD_VARS)
    publishing = sorted(PUBLISH_CREDENTIALS & credentials.keys())
    if publishing and not env.allow_publish:
        raise ProviderSettingError(
            f"{env_var(NAME, 'PASS_ENV')} names {', '.join(publishing)}, which would let Case's closer push "
            f"or open a pull request; set {env_var(NAME, 'ALLOW_PUBLISH')}=1 to opt in")
    secrets = list(credentials.values())
    if env.model_base_url is not None:
        parsed = urllib.parse.urlsplit(env.model_base_url)
        secrets.extend(s for s in (parsed.password, parsed.username) if s)
    if env.model_api_key_env is not None and env.model_api_key_env not in credentials:
        raise ProviderSettingError(
            f"{env_var(NAME, 'MODEL_API_KEY_ENV')}={env.model_api_key_env} must also be named in "
            f"{env_var(NAME, 'PASS_ENV')}")
    return CaseSettings(
        timeout_s=env.timeout(ctx.options),
        profile=env.profile,
        base_url=env.model_base_url,
        model_api=env.model_api,
        api_key_env=env.model_api_key_env,
        credentials=credentials,
        secrets=tuple(secrets),
        allow_publish=env.allow_publish,
    )


class CaseProvider:
    """WorkOS Case ``ca``, gated by executable and model admission."""

    name = NAME

    def preflight(self, ctx: RunContext) -> Gate:
        settings = case_settings(ctx)
        return preflight_gate(ctx, NAME, base_url=settings.base_url)

    def prepare(self, ctx: RunContext, gate: Gate) -> Invocation:
        settings = case_settings(ctx)
        model_provider, model, executable = gate.model.provider, gate.model.model, gate.provider.executable
        if not (gate.model.admitted and model_provider and model and executable):
            raise RuntimeError("Case prepare called without an admitted model and executable")
        data_dir = ctx.backend_dir / "case-data"
        write_case_data(data_dir, ctx.fixture, ctx.workspace, model_provider=model_provider, model=model)
        task_file = write_task_pair(ctx.task_dir, ctx.backend_dir, ctx.fixture, profile=settings.profile,
                                    created=utc_now())
        home = ctx.backend_dir / "home"
        write_home(home)
        extra = {"CASE_DATA_DIR": str(data_dir)}
        if settings.base_url is not None:
            pi_dir = ctx.backend_dir / "pi-agent"
            write_pi_models(pi_dir, model_provider=model_provider, model=model, base_url=settings.base_url,
                            api=settings.model_api, api_key=settings.api_key_env or NO_API_KEY)
            extra["PI_CODING_AGENT_DIR"] = str(pi_dir)
            key_env = PI_KEY_ENV.get(model_provider)
            if settings.api_key_env is not None and key_env is not None and key_env != settings.api_key_env:
                # Case's agents read the key from pi-ai's standard variable, never from models.json.
                extra[key_env] = settings.credentials[settings.api_key_env]
            elif settings.api_key_env is None and key_env is not None and key_env not in settings.credentials:
                extra[key_env] = NO_API_KEY
        return Invocation(
            argv=[executable, "run", "--task", str(task_file), "--mode", "unattended"],
            cwd=ctx.workspace,
            env=child_env(ctx, home=home, extra=extra, credentials=settings.credentials),
            timeout_s=settings.timeout_s,
            expected_sha256=gate.provider.sha256,
            secrets=settings.secrets,
            process_event=PROCESS_EVENT,
            state_dirs={STATE_DIR: STATE_EVIDENCE_DIR},
        )

    def interpret(self, ctx: RunContext, invocation: Invocation, result: ProcessResult) -> Outcome:
        keep_model_server_log(ctx)
        state = ctx.backend_dir / STATE_EVIDENCE_DIR
        run_log = state / "run-log.jsonl"
        stdout, stderr = read_capped(result.stdout.path), read_capped(result.stderr.path)
        finished = read_signals(b"", stderr, b"").finished or {}
        case_event_log = finished.get("eventLog")
        event_log = evidence_path(case_event_log if isinstance(case_event_log, str) else None,
                                  workspace=ctx.workspace, state_rel=STATE_DIR, evidence_rel=STATE_EVIDENCE_DIR,
                                  backend_dir=ctx.backend_dir) or _newest_event_log(ctx)
        signals = read_signals(stdout, stderr, read_capped(run_log),
                               read_capped(ctx.run_dir / event_log) if event_log else b"")
        outcome = interpret_case(
            signals, exit_code=result.exit_code, timed_out=result.timed_out, event_log=event_log,
            run_log=f"backend/{STATE_EVIDENCE_DIR}/run-log.jsonl" if run_log.is_file() else None,
        )
        report = dict(outcome.agent_result or {})
        plan = f"{task_slug(ctx.fixture.id)}/plan.json"
        report["plan"] = f"backend/{STATE_EVIDENCE_DIR}/{plan}" if (state / plan).is_file() else None
        report["containment"] = _containment(ctx, invocation, signals.phases, signals.agents)
        failure, reasons = outcome.failure_class, outcome.reasons
        endpoint = read_model_server_log(ctx)
        if endpoint is not None:
            # The scripted server's own log (certify, tests): evidence beside the egress ledger, never
            # "reported" usage -- Case prints no usage of its own, so report.usage.reported stays null.
            report["endpoint"] = {"calls": endpoint.calls, "input_tokens": endpoint.input_tokens,
                                  "output_tokens": endpoint.output_tokens, "failures": endpoint.failures,
                                  "summary": endpoint.summary}
            if failure in ("agent-protocol-error", "agent-reported-failure") and (
                    endpoint.failures or endpoint.calls == 0):
                # Case reports a failed model call as "AGENT_RESULT start delimiter not found".
                failure, reasons = "provider-crashed", (f"Case: {endpoint.summary}", *reasons)
        admitted = _admitted_model(ctx)
        mismatched = model_mismatches(signals, *admitted) if admitted else []
        if admitted and mismatched:
            failure = "model-not-admitted"
            reasons = (f"Case ran agents on a model other than the admitted {admitted[0]}/{admitted[1]}: "
                       + ", ".join(mismatched[:5]), *reasons)
        return Outcome(failure_class=failure, reasons=reasons, agent_result=report)


def _newest_event_log(ctx: RunContext) -> str | None:
    """Case's event log kept under backend/ when no ``pipeline finished`` line named it."""
    folder = ctx.backend_dir / STATE_EVIDENCE_DIR / task_slug(ctx.fixture.id) / "events"
    logs = sorted(folder.glob("run-*.jsonl"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return f"backend/{STATE_EVIDENCE_DIR}/{logs[-1].relative_to(ctx.backend_dir / STATE_EVIDENCE_DIR).as_posix()}" \
        if logs else None


def _admitted_model(ctx: RunContext) -> tuple[str, str] | None:
    """The ``models.default`` the harness gave Case (``case-data/config.json``)."""
    try:
        data = json.loads((ctx.backend_dir / "case-data" / "config.json").read_text("utf-8"))
        default = data["models"]["default"]
        return str(default["provider"]), str(default["model"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _git_remotes(workspace: Path) -> list[str]:
    try:
        text = (workspace / ".git" / "config").read_text("utf-8", "replace")
    except OSError:
        return []
    return [line.strip()[len('[remote "'):-2] for line in text.splitlines() if line.strip().startswith('[remote "')]


def _containment(ctx: RunContext, invocation: Invocation, phases: list[str],
                 agents: list[dict[str, Any]]) -> dict[str, Any]:
    """How Case's closer (``gh pr create``, ``git push``) was kept from publishing anything."""
    env = invocation.env
    passed = sorted(set(env) & PUBLISH_CREDENTIALS)
    remotes = _git_remotes(ctx.workspace)
    home = Path(env.get("HOME", ""))
    gh_config = (home / ".config" / "gh").exists() or (home / ".git-credentials").exists()
    contained = not passed and not remotes and not gh_config
    closer_ran = "closer" in phases or any(a.get("agent") == "closer" for a in agents)
    return {
        "closerRan": closer_ran,
        "contained": contained,
        "publishAllowed": case_settings(ctx).allow_publish,
        "publishCredentials": passed,
        "gitRemotes": remotes,
        "ghConfig": gh_config,
        "note": ("the closer ran with no GitHub/git credentials, no gh config and no git remote: nothing could be "
                 "pushed and no pull request opened") if contained and closer_ran else None,
    }
