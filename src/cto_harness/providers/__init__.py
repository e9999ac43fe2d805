"""Provider adapters, found by name through a lazy registry."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from cto_harness._lazy import lazy_exports
from cto_harness.providers._protocol import (
    Blocked,
    FailureClass,
    Gate,
    Invocation,
    Lane,
    ModelInfo,
    Outcome,
    Provider,
    ProviderInfo,
    ProviderSettingError,
    RunContext,
    RunOptions,
    Usage,
)
from cto_harness.providers._settings import ClientSettings, ProviderSettings

if TYPE_CHECKING:
    from cto_harness.core import HarnessConfig
    from cto_harness.providers._client_common import MODEL_SERVER_LOG_ENV
    from cto_harness.providers._gates import env_var

_LAZY: dict[str, str] = {
    "MODEL_SERVER_LOG_ENV": "cto_harness.providers._client_common:MODEL_SERVER_LOG_ENV",
    "env_var": "cto_harness.providers._gates:env_var",
}
"""Imported on first use (PEP 562): the client adapters' helpers pull in supply_chain."""


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


_REGISTRY: dict[str, str] = {
    "fake": "cto_harness.providers.fake:FakeProvider",
    "case": "cto_harness.providers.case:CaseProvider",
    "claude-code": "cto_harness.providers.claude_code:ClaudeCodeProvider",
    "codex": "cto_harness.providers.codex:CodexProvider",
    "mini-swe-agent": "cto_harness.providers.mini_swe_agent:MiniSweAgentProvider",
    "pi": "cto_harness.providers.pi:PiProvider",
    "command": "cto_harness.providers.command:CommandProvider",
}

__all__ = [
    "MODEL_SERVER_LOG_ENV",
    "Blocked",
    "ClientSettings",
    "FailureClass",
    "Gate",
    "Invocation",
    "Lane",
    "ModelInfo",
    "Outcome",
    "Provider",
    "ProviderInfo",
    "ProviderSettingError",
    "ProviderSettings",
    "RunContext",
    "RunOptions",
    "UnknownProviderError",
    "Usage",
    "env_var",
    "get_provider",
    "provider_names",
]


class UnknownProviderError(ValueError):
    """The provider name is not registered."""


def provider_names() -> list[str]:
    return sorted(_REGISTRY)


def get_provider(name: str, config: HarnessConfig | None = None) -> Provider:
    """Instantiate the provider registered under ``name`` (or a ``module:Class`` path).

    A provider catalog entry that declares ``adapter = "command"`` (for example one an
    operator added in cto-harness.toml) runs through the command adapter under its own name.
    """
    target = _REGISTRY.get(name) or (name if ":" in name else None)
    if target is None:
        return _catalog_adapter(name, config)
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    provider: Provider = cls()
    return provider


def _catalog_adapter(name: str, config: HarnessConfig | None) -> Provider:
    """A catalog entry with ``adapter = "command"``; any other name is unknown (same rows as ``provider list``)."""
    from cto_harness.supply_chain import AdmissionError, load_catalog

    try:
        catalog = load_catalog(config)
    except AdmissionError as exc:
        raise UnknownProviderError(f"unknown provider {name!r} (provider catalog unusable: {exc})") from exc
    entry = catalog.get(name)
    if entry is not None and entry.adapter == "command":
        from cto_harness.providers.command import CommandProvider

        return CommandProvider(name)
    runnable = sorted({*provider_names(), *(n for n, e in catalog.items() if e.adapter == "command")})
    if entry is not None:
        raise UnknownProviderError(f"catalog entry {name!r} has no adapter to run it: add adapter = \"command\" "
                                   f"to [catalog.{name}]; runnable providers: {', '.join(runnable)}")
    raise UnknownProviderError(f"unknown provider {name!r}; valid providers: {', '.join(runnable)}")
