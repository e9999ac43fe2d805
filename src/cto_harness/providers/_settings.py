"""A provider's settings: one pydantic model built from its ``CTO_HARNESS_<P>_*`` variables.

Each field ``f`` is read from ``CTO_HARNESS_<P>_<F>`` of the caller's environment snapshot
(unset or blank: the field's default) and validated with ``model_validate``. A value that
fails validation raises ``ProviderSettingError`` naming the variable: the runner blocks the
run before any provider process exists (``provider-unavailable``), it is not a harness bug.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from cto_harness.providers._protocol import ProviderSettingError, RunOptions

__all__ = ["ClientSettings", "HttpUrl", "ProviderSettings", "Seconds", "env_var", "positive_seconds"]


def env_var(provider: str, suffix: str) -> str:
    """``CTO_HARNESS_<P>_<SUFFIX>``: P upper-cased, ``-`` becomes ``_``."""
    return f"CTO_HARNESS_{provider.upper().replace('-', '_')}_{suffix}"


def positive_seconds(value: Any) -> float:
    """A positive, finite number of seconds (``"12.5"`` is fine; ``abc``, ``0``, ``nan``, ``inf`` are not)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("is not a positive number of seconds")
    return seconds


def _http_url(value: Any) -> str:
    parsed = urllib.parse.urlsplit(str(value))
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("is not an http(s) URL")
    return str(value).rstrip("/")


Seconds = Annotated[float, BeforeValidator(positive_seconds)]
HttpUrl = Annotated[str, BeforeValidator(_http_url)]


class ProviderSettings(BaseModel):
    """What every provider reads from ``CTO_HARNESS_<P>_*``; subclasses add their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_timeout_s: ClassVar[float] = 900.0
    """Provider timeout when neither --timeout nor ``TIMEOUT_SECONDS`` is set."""

    timeout_seconds: Seconds | None = None
    """``CTO_HARNESS_<P>_TIMEOUT_SECONDS``: the provider's process bound in seconds."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], provider: str) -> Self:
        """Build the settings of ``provider`` from an environment snapshot.

        Raises:
            ProviderSettingError: a variable is set but its value is unusable; names the variable.
        """
        raw: dict[str, str] = {}
        for name in cls.model_fields:
            value = environ.get(env_var(provider, name.upper()), "").strip()
            if value:
                raw[name] = value
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ProviderSettingError(_describe(exc, raw, provider)) from exc

    def timeout(self, options: RunOptions) -> float:
        """``--timeout``, else ``TIMEOUT_SECONDS``, else the class default."""
        if options.timeout_s is not None:
            return options.timeout_s
        return self.timeout_seconds if self.timeout_seconds is not None else self.default_timeout_s


class ClientSettings(ProviderSettings):
    """Settings shared by the real-client adapters (claude-code, codex, mini-swe-agent, pi, command)."""

    bin: str | None = None
    """``CTO_HARNESS_<P>_BIN``: the executable (checked by admission, unless --unadmitted)."""
    model_provider: str | None = None
    """``CTO_HARNESS_<P>_MODEL_PROVIDER``: the model's provider (or --model-provider)."""
    model: str | None = None
    """``CTO_HARNESS_<P>_MODEL``: the model (or --model); never a client's built-in default."""
    base_url: HttpUrl | None = None
    """``CTO_HARNESS_<P>_BASE_URL``: the model endpoint exactly as the client should use it."""
    pass_env: str | None = None
    """``CTO_HARNESS_<P>_PASS_ENV``: comma-separated names of credentials passed to the child."""


def _describe(exc: ValidationError, raw: Mapping[str, str], provider: str) -> str:
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    var = env_var(provider, field.upper())
    value = raw.get(field)
    if error["type"] == "value_error":
        return f"{var}={value!r} {error['ctx']['error']}"
    return f"{var}={value!r}: {error['msg']}"
