"""cto-harness: run coding-agent providers on fixture tasks and trust only evidence.

The curated public API. Names are imported on first use (a module ``__getattr__``), so
``import cto_harness`` and ``cto-harness --help`` stay fast::

    from cto_harness import RunRequest, run_stage2, verify_run

    result = run_stage2(RunRequest(provider="fake", runs_dir=Path("runs")))
    assert result.report.verdict == "pass" and verify_run(result.run_dir).ok
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cto_harness._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # Running
    "RunRequest": "cto_harness.runner",
    "RunResult": "cto_harness.runner",
    "run_stage2": "cto_harness.runner",
    "recover_runs": "cto_harness.runner",
    "RunOptions": "cto_harness.providers",
    # Evidence
    "Report": "cto_harness.evidence",
    "load_report": "cto_harness.evidence",
    "report_schema": "cto_harness.evidence",
    "verify_run": "cto_harness.evidence",
    "VerifyResult": "cto_harness.evidence",
    "EXIT_CODES": "cto_harness.core",
    # Fixtures
    "Fixture": "cto_harness.fixtures",
    "load_fixture": "cto_harness.fixtures",
    "resolve_fixture": "cto_harness.fixtures",
    "builtin_fixture_ids": "cto_harness.fixtures",
    # Providers and config
    "get_provider": "cto_harness.providers",
    "provider_names": "cto_harness.providers",
    "HarnessConfig": "cto_harness.core",
    "ConfigError": "cto_harness.core",
    "load_config": "cto_harness.core",
    # Self-checks
    "run_health": "cto_harness.selfcheck",
    "certify": "cto_harness.selfcheck",
}

__all__ = [
    "EXIT_CODES",
    "ConfigError",
    "Fixture",
    "HarnessConfig",
    "Report",
    "RunOptions",
    "RunRequest",
    "RunResult",
    "VerifyResult",
    "__version__",
    "builtin_fixture_ids",
    "certify",
    "get_provider",
    "load_config",
    "load_fixture",
    "load_report",
    "provider_names",
    "recover_runs",
    "report_schema",
    "resolve_fixture",
    "run_health",
    "run_stage2",
    "verify_run",
]

if TYPE_CHECKING:
    from cto_harness.core import EXIT_CODES, ConfigError, HarnessConfig, load_config
    from cto_harness.evidence import Report, VerifyResult, load_report, report_schema, verify_run
    from cto_harness.fixtures import Fixture, builtin_fixture_ids, load_fixture, resolve_fixture
    from cto_harness.providers import RunOptions, get_provider, provider_names
    from cto_harness.runner import RunRequest, RunResult, recover_runs, run_stage2
    from cto_harness.selfcheck import certify, run_health


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
