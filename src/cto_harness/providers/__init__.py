"""Provider adapters, found by name through a lazy registry."""

from __future__ import annotations

import importlib

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
    "Blocked",
    "FailureClass",
    "Gate",
    "Invocation",
    "Lane",
    "ModelInfo",
    "Outcome",
    "Provider",
    "ProviderInfo",
    "ProviderSettingError",
    "RunContext",
    "RunOptions",
    "UnknownProviderError",
    "Usage",
    "get_provider",
    "provider_names",
]


class UnknownProviderError(ValueError):
    """The provider name is not registered."""


def provider_names() -> list[str]:
    return sorted(_REGISTRY)


def get_provider(name: str) -> Provider:
    """Instantiate the provider registered under ``name`` (or a ``module:Class`` path)."""
    target = _REGISTRY.get(name) or (name if ":" in name else None)
    if target is None:
        raise UnknownProviderError(
            f"unknown provider {name!r}; valid providers: {', '.join(provider_names())}"
        )
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    provider: Provider = cls()
    return provider
