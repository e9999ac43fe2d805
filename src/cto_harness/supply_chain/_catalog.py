"""The provider catalog: built-in data plus the operator's ``[catalog.<name>]`` tables.

The catalog says where a provider's source is, which commit to build and how; it
grants nothing. An operator table adds a provider or overrides fields of a built-in
one (table-level: a given ``identify`` table replaces the built-in one whole). Every
entry is validated; an invalid entry is an error naming the entry and field, never
silently dropped.
"""

from __future__ import annotations

import copy
import re
import tomllib
from importlib import resources
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cto_harness.core import HarnessConfig
from cto_harness.supply_chain._errors import CatalogError, PinError, UnknownProviderName
from cto_harness.supply_chain._git import validate_pin
from cto_harness.supply_chain._util import NAME_RE, SHA256_RE

_VERSION_RE = re.compile(r"^\d+(\.\d+)*$")
_TOOL_RE = re.compile(r"^[A-Za-z0-9._+-]+$")


class ToolRequirement(BaseModel):
    """One build tool: found on PATH (or bootstrapped), optionally at a minimum version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    min_version: str | None = None
    version_args: list[str] = Field(default_factory=lambda: ["--version"])

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _TOOL_RE.match(v):
            raise ValueError(f"tool name {v!r} must be a bare executable name")
        return v

    @field_validator("min_version")
    @classmethod
    def _min_version(cls, v: str | None) -> str | None:
        if v is not None and not _VERSION_RE.match(v):
            raise ValueError(f"min_version {v!r} must look like 20 or 20.19.5")
        return v


class Identify(BaseModel):
    """How a built executable proves it is the provider: argv suffix + output patterns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    args: list[str] = Field(default_factory=lambda: ["--help"])
    patterns: list[str] = Field(min_length=1)
    """Regexes that must ALL match the combined stdout+stderr."""
    expect_exit_code: int | None = 0
    """None accepts any exit status (some tools exit non-zero on --help)."""
    timeout_s: float = Field(default=5.0, gt=0, le=120)

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} is not a valid regex: {exc}") from exc
        return v


class KnownDigest(BaseModel):
    """A digest someone observed before; informational only, it admits nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str
    note: str = ""

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        if not SHA256_RE.match(v):
            raise ValueError("sha256 must be 64 lowercase hex characters")
        return v


class CatalogEntry(BaseModel):
    """Everything needed to discover, build and identify one provider."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    source_url: str = Field(min_length=1)
    pin: str
    pin_kind: Literal["git", "registry"] = "git"
    """``git``: a full 40-hex commit. ``registry``: a package registry's integrity for a
    pinned release (npm ``sha512-<base64>``, PyPI ``sha256:<hex>``), for clients installed
    from a registry rather than built from source."""
    toolchain: list[ToolRequirement] = Field(default_factory=list)
    build_command: list[str] = Field(min_length=1)
    install_command: list[str] | None = None
    """Run before ``build_command`` in the fresh checkout (Case: ``bun install
    --frozen-lockfile``, dependencies from the npm registry); None: no install step."""
    lockfile: str | None = None
    """The dependency lockfile whose SHA-256 every build records (Case: ``bun.lock``)."""
    artifact: str
    identify: Identify
    build_timeout_s: float = Field(default=1800.0, gt=0)
    bun_version: str | None = None
    known_digests: list[KnownDigest] = Field(default_factory=list)
    adapter: str | None = None
    """Adapter that speaks this executable's protocol when it has none of its own
    (``"command"``): then ``cto-harness run --provider <name>`` runs it, configured by
    ``CTO_HARNESS_<NAME>_*`` like any real provider."""
    origin: str = "builtin"
    """Where the entry came from: ``builtin``, ``config:<path>`` or ``builtin+config:<path>``."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v) or ".." in v:
            raise ValueError("name must be lowercase letters, digits, '.', '_' or '-'")
        return v

    @model_validator(mode="after")
    def _pin(self) -> CatalogEntry:
        if self.pin_kind == "registry":
            registry_digest(self.pin)
            return self
        try:
            pin = validate_pin(self.pin)
        except PinError as exc:
            raise ValueError(str(exc)) from exc
        if pin != self.pin:
            object.__setattr__(self, "pin", pin)
        return self

    @field_validator("install_command")
    @classmethod
    def _install(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("install_command must name a command (or be left out)")
        return v

    @field_validator("artifact", "lockfile")
    @classmethod
    def _artifact(cls, v: str | None) -> str | None:
        if v is None:
            return None
        p = PurePosixPath(v)
        if not v or p.is_absolute() or ".." in p.parts or p.name in ("", "."):
            raise ValueError(f"{v!r} must be a relative path inside the checkout")
        return str(p)

    @field_validator("bun_version")
    @classmethod
    def _bun_version(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^\d+\.\d+\.\d+$", v):
            raise ValueError(f"bun_version {v!r} must be an exact version like 1.2.3")
        return v

    @property
    def bin_env_var(self) -> str:
        """``CTO_HARNESS_<NAME>_BIN``: the operator's explicit executable for this provider."""
        return f"CTO_HARNESS_{re.sub(r'[^A-Z0-9]', '_', self.name.upper())}_BIN"

    @property
    def artifact_name(self) -> str:
        return PurePosixPath(self.artifact).name


def builtin_catalog_data() -> dict[str, dict[str, Any]]:
    text = resources.files("cto_harness.supply_chain").joinpath("catalog.toml").read_text("utf-8")
    return tomllib.loads(text)


def _validate(name: str, data: dict[str, Any], origin: str) -> CatalogEntry:
    if "name" in data and data["name"] != name:
        raise CatalogError(
            f"catalog entry {name!r} ({origin}): name field {data['name']!r} differs from its table"
        )
    try:
        return CatalogEntry.model_validate({**data, "name": name, "origin": origin})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(entry)"
        msg = first["msg"].removeprefix("Value error, ")
        raise CatalogError(f"catalog entry {name!r} ({origin}): {loc}: {msg}") from exc


def load_catalog(config: HarnessConfig | None = None) -> dict[str, CatalogEntry]:
    """The built-in catalog with the operator's additions and overrides applied."""
    merged: dict[str, tuple[dict[str, Any], str]] = {
        name: (copy.deepcopy(data), "builtin") for name, data in builtin_catalog_data().items()
    }
    if config is not None:
        where = f"config:{config.source or 'cto-harness.toml'}"
        for name, override in config.catalog.items():
            if not isinstance(override, dict):
                raise CatalogError(f"catalog entry {name!r} ({where}) must be a table")
            if name in merged:
                base, _ = merged[name]
                merged[name] = ({**base, **copy.deepcopy(override)}, f"builtin+{where}")
            else:
                merged[name] = (copy.deepcopy(override), where)
    return {name: _validate(name, data, origin) for name, (data, origin) in sorted(merged.items())}


def catalog_entry(name: str, catalog: dict[str, CatalogEntry]) -> CatalogEntry:
    try:
        return catalog[name]
    except KeyError:
        known = ", ".join(sorted(catalog)) or "none"
        raise UnknownProviderName(
            f"no catalog entry named {name!r} (known: {known}); add [catalog.{name}] to "
            "cto-harness.toml"
        ) from None


def registry_digest(integrity: str) -> dict[str, str]:
    """A registry integrity as an in-toto digest set: ``sha512-<b64>`` / ``sha256:<hex>``.

    Raises:
        ValueError: not a recognised integrity string.
    """
    import base64
    import binascii

    algorithm, sep, value = integrity.partition("-")
    if sep and algorithm in ("sha256", "sha384", "sha512"):
        try:
            return {algorithm: base64.b64decode(value, validate=True).hex()}
        except binascii.Error as exc:
            raise ValueError(f"registry pin {integrity!r}: bad base64 digest") from exc
    algorithm, sep, value = integrity.partition(":")
    if sep and algorithm in ("sha256", "sha512") and re.fullmatch(r"[0-9a-f]{64,128}", value):
        return {algorithm: value}
    raise ValueError(f"registry pin {integrity!r} is not an integrity like sha512-<base64> or sha256:<hex>")
