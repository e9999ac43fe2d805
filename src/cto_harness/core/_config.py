"""Harness home and the operator's ``cto-harness.toml``.

The config file is looked up, first match wins: ``CTO_HARNESS_CONFIG``,
``./cto-harness.toml``, ``<harness home>/cto-harness.toml``. A malformed file is an
error, never silently ignored: a policy that fails to load must not become "no policy".
So is an unknown key: a misspelt ``admitted_modelz`` would otherwise drop the allowlist.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cto_harness.core._home import harness_home


class ConfigError(ValueError):
    """The config file exists but cannot be used."""


class ProviderConfig(BaseModel):
    """Operator settings for one provider (``[providers.<name>]``)."""

    model_config = ConfigDict(extra="forbid")

    admitted_models: list[str] | None = None
    """Allowlist of ``model-provider/model`` pairs; None means any explicitly named pair."""


class ModelPrice(BaseModel):
    """USD per million tokens of one model (``[prices."<model-provider>/<model>"]``)."""

    model_config = ConfigDict(extra="forbid")

    input_usd_per_mtok: float = Field(ge=0)
    """Price of one million input (prompt) tokens."""
    output_usd_per_mtok: float = Field(ge=0)
    """Price of one million output (completion) tokens."""


class HarnessConfig(BaseModel):
    """The whole ``cto-harness.toml``."""

    model_config = ConfigDict(extra="forbid")

    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    catalog: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Provider catalog entries that add to or override the built-in catalog."""
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    """Model prices keyed ``"<model-provider>/<model>"``: the egress proxy prices measured calls
    and enforces ``CTO_HARNESS_<P>_MAX_COST_USD`` with them (no entry: cost null)."""
    source: str | None = None
    """Path the config was read from (None: built-in defaults)."""

    def provider(self, name: str) -> ProviderConfig:
        return self.providers.get(name) or ProviderConfig()


def config_path(environ: Mapping[str, str], cwd: Path | None = None) -> Path | None:
    explicit = environ.get("CTO_HARNESS_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    for candidate in ((cwd or Path.cwd()) / "cto-harness.toml", harness_home(environ) / "cto-harness.toml"):
        if candidate.is_file():
            return candidate
    return None


def load_config(environ: Mapping[str, str], cwd: Path | None = None) -> HarnessConfig:
    """Load the operator config, or defaults when there is none.

    Raises:
        ConfigError: the file is named or present but unreadable or invalid.
    """
    path = config_path(environ, cwd)
    if path is None:
        return HarnessConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    if "source" in data:
        raise ConfigError(f"invalid config {path}: unknown key 'source' (valid keys here: providers, catalog)")
    try:
        config = HarnessConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc
    return config.model_copy(update={"source": str(path)})


def _describe(exc: ValidationError, path: Path) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    if first["type"] != "extra_forbidden":
        return f"invalid config {path}: {loc}: {first['msg']}"
    model: type[BaseModel] = ProviderConfig if first["loc"][0] == "providers" else HarnessConfig
    valid = ", ".join(name for name in model.model_fields if name != "source")
    return f"invalid config {path}: unknown key {loc!r} (valid keys here: {valid})"
