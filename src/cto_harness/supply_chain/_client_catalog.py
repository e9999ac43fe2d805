"""The pinned client catalog (``clients.toml``): which package, which version, which bytes."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ClientCatalogError(ValueError):
    """The client catalog is invalid or names no such client."""


class ClientIdentify(BaseModel):
    """How the installed client proves what it is before admission."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    args: list[str] = Field(default_factory=lambda: ["--version"])
    """Arguments appended to the executable for the identification run."""
    patterns: list[str] = Field(min_length=1)
    """Regexes that must all match the combined output."""


class ClientSpec(BaseModel):
    """One pinned client."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """Provider name (the registry key), e.g. ``claude-code``."""
    description: str = ""
    """One line for listings."""
    kind: Literal["npm", "pypi"]
    """Which registry the client comes from."""
    package: str
    """Registry package name."""
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    """Exact version; ranges are refused."""
    integrity: str = Field(pattern=r"^(sha512-[A-Za-z0-9+/=]+|sha256:[0-9a-f]{64})$")
    """Registry integrity of the top-level package (npm SRI / wheel sha256)."""
    mode: Literal["native", "launcher"]
    """``native``: admit a standalone executable; ``launcher``: admit a tree-pinning launcher."""
    executable: str | None = None
    """Native mode: glob (relative to the install prefix) matching exactly one executable."""
    entry: str | None = None
    """Launcher mode: the JS entry file (npm) or ``module:function`` (PyPI)."""
    identify: ClientIdentify
    """Self-identification run before admission."""

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}" if self.kind == "npm" else f"{self.package}=={self.version}"

    @property
    def source_url(self) -> str:
        if self.kind == "npm":
            return f"https://registry.npmjs.org/{self.package}/-/{self.package.rsplit('/', 1)[-1]}-{self.version}.tgz"
        return f"https://pypi.org/project/{self.package}/{self.version}/"

    @property
    def env_prefix(self) -> str:
        return "CTO_HARNESS_" + re.sub(r"[^A-Z0-9]", "_", self.name.upper())


def load_clients() -> dict[str, ClientSpec]:
    """The built-in client catalog.

    Raises:
        ClientCatalogError: an entry is invalid.
    """
    text = resources.files("cto_harness.supply_chain").joinpath("clients.toml").read_text("utf-8")
    data = tomllib.loads(text)
    out: dict[str, ClientSpec] = {}
    for name, entry in data.items():
        try:
            out[name] = ClientSpec.model_validate({**entry, "name": name})
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ClientCatalogError(f"clients.toml [{name}]: {loc}: {first['msg']}") from exc
        spec = out[name]
        if (spec.mode == "native") != (spec.executable is not None) or (spec.mode == "launcher") != (
            spec.entry is not None
        ):
            raise ClientCatalogError(f"clients.toml [{name}]: native needs `executable`, launcher needs `entry`")
    return out


def client_spec(name: str) -> ClientSpec:
    """The catalog entry for ``name``.

    Raises:
        ClientCatalogError: no such client (the message lists the known ones).
    """
    clients = load_clients()
    try:
        return clients[name]
    except KeyError:
        raise ClientCatalogError(f"no pinned client named {name!r}; known: {', '.join(sorted(clients))}") from None
