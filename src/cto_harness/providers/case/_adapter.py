"""The WorkOS Case adapter: ``ca run --task <run>/task/<slug>.task.json --mode unattended``.

Case runs only as admitted bytes (``CTO_HARNESS_CASE_BIN`` or the admitted store), only
with an explicitly admitted model written into its isolated ``CASE_DATA_DIR`` as
``models.default``, with an isolated ``HOME`` and an environment built from an allowlist
(PATH, LANG, TZ, HOME, CASE_DATA_DIR, PI_CODING_AGENT_DIR when an endpoint is declared,
and the credentials named in ``CTO_HARNESS_CASE_PASS_ENV``). Its cwd is the fixture
workspace; its state dir ``.case/`` is kept as evidence under ``backend/case-state/``.
The outcome is read from Case's completion signals (``_case_outcome``); the harness's
own diff and tests decide a pass. See ``docs/case.md``.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

from pydantic import BaseModel

from cto_harness.core import ProcessResult
from cto_harness.evidence import utc_now
from cto_harness.providers._agent_result import read_capped
from cto_harness.providers._gates import (
    ProviderSettingError,
    child_env,
    env_var,
    pass_through_credentials,
    preflight_gate,
    provider_timeout,
    setting,
)
from cto_harness.providers._protocol import Gate, Invocation, Outcome, RunContext
from cto_harness.providers.case._outcome import evidence_path, interpret_case, read_signals
from cto_harness.providers.case._task import (
    DEFAULT_MODEL_API,
    NO_API_KEY,
    PROFILES,
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


class CaseConfig(BaseModel):
    """Defaults of the Case lane (each overridable by a ``CTO_HARNESS_CASE_*`` variable)."""

    timeout_s: float = 1800.0
    """Process bound when neither --timeout nor CTO_HARNESS_CASE_TIMEOUT_SECONDS is set;
    Case's own per-agent limit (600 s, retried) does not bound a hung model call."""
    profile: str = "standard"
    """Case task profile when CTO_HARNESS_CASE_PROFILE is unset (``standard`` or ``tiny``)."""
    model_api: str = DEFAULT_MODEL_API
    """pi ``api`` of an endpoint declared by CTO_HARNESS_CASE_MODEL_BASE_URL."""


@dataclass(frozen=True)
class CaseSettings:
    """The validated ``CTO_HARNESS_CASE_*`` settings of one run."""

    timeout_s: float
    profile: str
    base_url: str | None
    model_api: str
    api_key_env: str | None
    credentials: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()


def case_settings(ctx: RunContext) -> CaseSettings:
    """Read and validate every Case setting from the caller's environment snapshot.

    Raises:
        ProviderSettingError: a setting is present but unusable.
    """
    defaults = CaseConfig()
    profile = setting(ctx, NAME, "PROFILE") or defaults.profile
    if profile not in PROFILES:
        raise ProviderSettingError(f"{env_var(NAME, 'PROFILE')}={profile!r}; valid: {', '.join(PROFILES)}")
    credentials = pass_through_credentials(ctx, NAME, reserved=_CHILD_VARS)
    secrets = list(credentials.values())
    base_url = setting(ctx, NAME, "MODEL_BASE_URL")
    if base_url is not None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ProviderSettingError(f"{env_var(NAME, 'MODEL_BASE_URL')}={base_url!r} is not an http(s) URL")
        secrets.extend(s for s in (parsed.password, parsed.username) if s)
    api_key_env = setting(ctx, NAME, "MODEL_API_KEY_ENV")
    if api_key_env is not None and api_key_env not in credentials:
        raise ProviderSettingError(
            f"{env_var(NAME, 'MODEL_API_KEY_ENV')}={api_key_env} must also be named in {env_var(NAME, 'PASS_ENV')}")
    return CaseSettings(
        timeout_s=provider_timeout(ctx, NAME, defaults.timeout_s),
        profile=profile,
        base_url=base_url,
        model_api=setting(ctx, NAME, "MODEL_API") or defaults.model_api,
        api_key_env=api_key_env,
        credentials=credentials,
        secrets=tuple(secrets),
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
        run_log = ctx.backend_dir / STATE_EVIDENCE_DIR / "run-log.jsonl"
        signals = read_signals(read_capped(result.stdout.path), read_capped(result.stderr.path),
                               read_capped(run_log))
        case_event_log = (signals.finished or {}).get("eventLog")
        event_log = evidence_path(case_event_log if isinstance(case_event_log, str) else None,
                                  workspace=ctx.workspace, state_rel=STATE_DIR, evidence_rel=STATE_EVIDENCE_DIR,
                                  backend_dir=ctx.backend_dir)
        return interpret_case(
            signals, exit_code=result.exit_code, timed_out=result.timed_out, event_log=event_log,
            run_log=f"backend/{STATE_EVIDENCE_DIR}/run-log.jsonl" if run_log.is_file() else None,
        )
