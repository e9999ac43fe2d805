"""The fake provider: the default, deterministic lane (no network, no external tool)."""

from cto_harness.providers.fake._provider import SCENARIOS, FakeProvider, FakeSettings

__all__ = ["SCENARIOS", "FakeProvider", "FakeSettings"]
