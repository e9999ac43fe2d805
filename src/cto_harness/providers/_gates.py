"""Pre-start gates shared by every real-provider adapter.

A real provider ``P`` is configured only through ``CTO_HARNESS_<P>_*`` variables of the
caller's environment snapshot (``ctx.environ``) and the run options, never through
``os.environ``, and its child gets an environment built from an allowlist. The helpers
here answer, before any provider process exists: which admitted bytes would run, with
which explicitly admitted model, for how long, and with which named credentials.

Settings that are present but unusable (a non-numeric timeout, a credential name that
is not set) raise ``ProviderSettingError``: the runner blocks the run before the provider
starts (class ``provider-unavailable``) and the report names the variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cto_harness.providers._protocol import Blocked, Gate, ModelInfo, ProviderSettingError, RunContext
from cto_harness.providers._settings import env_var, positive_seconds
from cto_harness.supply_chain import Resolution, resolve_provider_executable

__all__ = [
    "MODEL_NOT_ADMITTED_FILE",
    "ProviderSettingError",
    "admit_model",
    "child_env",
    "env_var",
    "pass_through_credentials",
    "preflight_gate",
    "provider_timeout",
    "resolve_executable",
    "setting",
]

MODEL_NOT_ADMITTED_FILE = "provider-model-not-admitted.txt"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BASE_ENV_DEFAULTS = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "UTC"}
"""The only caller variables a provider child inherits (caller value, else this default)."""


def setting(ctx: RunContext, provider: str, suffix: str) -> str | None:
    """The stripped value of ``CTO_HARNESS_<P>_<SUFFIX>``; unset or blank is None."""
    value = ctx.environ.get(env_var(provider, suffix), "").strip()
    return value or None


def resolve_executable(ctx: RunContext, provider: str) -> Resolution:
    """Resolve ``CTO_HARNESS_<P>_BIN`` (or the admitted store) through admission."""
    return resolve_provider_executable(
        provider,
        environ=ctx.environ,
        home=ctx.harness_home,
        bin_env_var=env_var(provider, "BIN"),
        allow_unadmitted=ctx.options.unadmitted,
    )


@dataclass(frozen=True)
class _Named:
    value: str | None
    source: str | None
    """``flag`` or ``env``; None when not given."""


def _named(flag: str | None, env_value: str | None) -> _Named:
    flag = (flag or "").strip() or None
    if flag is not None:
        return _Named(flag, "flag")
    return _Named(env_value, "env" if env_value is not None else None)


def admit_model(ctx: RunContext, provider: str) -> tuple[ModelInfo, Blocked | None]:
    """Admit the model pair named by flag or env against the config allowlist.

    A flag (``--model-provider``/``--model``) overrides its env variable. Both halves
    must be named: nothing may fall back to a provider's built-in default model. When
    ``[providers.<P>] admitted_models`` exists, ``provider/model`` must be on it and the
    model is admitted by ``policy``; otherwise by how it was named (``flag`` or ``env``).
    """
    mp_var, m_var = env_var(provider, "MODEL_PROVIDER"), env_var(provider, "MODEL")
    model_provider = _named(ctx.options.model_provider, setting(ctx, provider, "MODEL_PROVIDER"))
    model = _named(ctx.options.model, setting(ctx, provider, "MODEL"))
    refused = ModelInfo(provider=model_provider.value, model=model.value, admitted=False)
    missing = [f"{var} (or {flag})" for var, flag, named in (
        (mp_var, "--model-provider", model_provider), (m_var, "--model", model)) if named.value is None]
    if missing:
        return refused, Blocked("model-not-admitted", (
            f"model not admitted: {' and '.join(missing)} not set. {provider} is never started "
            f"without an explicitly admitted model, so it cannot fall back to a built-in default "
            f"model; no {provider} process was started."), MODEL_NOT_ADMITTED_FILE)
    pair = f"{model_provider.value}/{model.value}"
    allowlist = ctx.config.provider(provider).admitted_models
    if allowlist is not None and pair not in allowlist:
        where = ctx.config.source or "the harness config"
        listed = ", ".join(allowlist) or "(empty: nothing is admitted)"
        return refused, Blocked("model-not-admitted", (
            f"model not admitted: {pair} is not on the allowlist [providers.{provider}] "
            f"admitted_models in {where}: {listed}; no {provider} process was started."),
            MODEL_NOT_ADMITTED_FILE)
    sources = {model_provider.source, model.source}
    admitted_by = "policy" if allowlist is not None else ("flag" if "flag" in sources else "env")
    return ModelInfo(provider=model_provider.value, model=model.value, admitted=True,
                     admitted_by=admitted_by), None


def preflight_gate(ctx: RunContext, provider: str, *, base_url: str | None = None) -> Gate:
    """Executable and model admission in one gate; the executable's failure wins.

    A model that is not admitted is recorded even then (``also_blocked``): its evidence file
    is written whichever gate decides.
    """
    resolution = resolve_executable(ctx, provider)
    model, model_blocked = admit_model(ctx, provider)
    if base_url is not None:
        model = ModelInfo(provider=model.provider, model=model.model, admitted=model.admitted,
                          admitted_by=model.admitted_by, base_url=base_url)
    also = (model_blocked,) if resolution.blocked is not None and model_blocked is not None else ()
    return Gate(provider=resolution.provider_info(provider), model=model, lane=resolution.lane,
                blocked=resolution.blocked or model_blocked, also_blocked=also)


def provider_timeout(ctx: RunContext, provider: str, default_s: float) -> float:
    """``--timeout``, else ``CTO_HARNESS_<P>_TIMEOUT_SECONDS``, else ``default_s``.

    Raises:
        ProviderSettingError: the variable is not a positive, finite number of seconds.
    """
    if ctx.options.timeout_s is not None:
        return ctx.options.timeout_s
    raw = setting(ctx, provider, "TIMEOUT_SECONDS")
    if raw is None:
        return default_s
    try:
        return positive_seconds(raw)
    except ValueError as exc:
        raise ProviderSettingError(f"{env_var(provider, 'TIMEOUT_SECONDS')}={raw!r} {exc}") from exc


def pass_through_credentials(ctx: RunContext, provider: str, *, reserved: frozenset[str] = frozenset()
                             ) -> dict[str, str]:
    """The variables named by ``CTO_HARNESS_<P>_PASS_ENV=NAME1,NAME2`` with their values.

    Their values are secrets: adapters return them in ``Invocation.secrets`` so the runner
    redacts them from every evidence file.

    Raises:
        ProviderSettingError: a name is malformed, reserved for the harness, or not set.
    """
    var = env_var(provider, "PASS_ENV")
    raw = setting(ctx, provider, "PASS_ENV")
    if raw is None:
        return {}
    passed: dict[str, str] = {}
    for name in (part.strip() for part in raw.split(",")):
        if not name:
            continue
        if not _ENV_NAME.match(name):
            raise ProviderSettingError(f"{var}: {name!r} is not an environment variable name")
        if name in reserved or name in _BASE_ENV_DEFAULTS or name == "HOME" or name.startswith("CTO_HARNESS_"):
            raise ProviderSettingError(f"{var}: {name} is set by the harness and cannot be passed through")
        if name not in ctx.environ:
            raise ProviderSettingError(f"{var} names {name}, which is not set in the caller's environment")
        passed[name] = ctx.environ[name]
    return passed


def child_env(ctx: RunContext, *, home: Path, extra: Mapping[str, str] | None = None,
              credentials: Mapping[str, str] | None = None) -> dict[str, str]:
    """The provider child's complete environment, built from an allowlist.

    PATH, LANG and TZ come from the caller (or safe defaults), HOME is the run's isolated
    home, then the adapter's own ``extra`` variables and the named ``credentials``.
    Nothing else of the caller's environment is passed on.
    """
    env = {name: ctx.environ.get(name) or default for name, default in _BASE_ENV_DEFAULTS.items()}
    env["HOME"] = str(home)
    env.update(extra or {})
    env.update(credentials or {})
    return env
