"""Shared vocabulary with no dependency on any other room of the harness.

The pydantic-based parts (the config file, the provider/model types) are imported on first
use: the process-control room, and the CLI's first steps, need none of them.
"""

from typing import TYPE_CHECKING

from cto_harness._lazy import lazy_exports
from cto_harness.core._home import harness_home
from cto_harness.core._process import CapturedStream, ProcessResult
from cto_harness.core._vocab import EXIT_CODES, USAGE_ERROR_EXIT, FailureClass, Lane, Verdict

if TYPE_CHECKING:
    from cto_harness.core._config import (
        ConfigError,
        HarnessConfig,
        ModelPrice,
        ProviderConfig,
        config_path,
        load_config,
    )
    from cto_harness.core._types import Blocked, ModelInfo, ProviderInfo, Usage

_LAZY = {
    **{name: "cto_harness.core._config" for name in (
        "ConfigError", "HarnessConfig", "ModelPrice", "ProviderConfig", "config_path", "load_config")},
    **{name: "cto_harness.core._types" for name in ("Blocked", "ModelInfo", "ProviderInfo", "Usage")},
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "EXIT_CODES",
    "USAGE_ERROR_EXIT",
    "Blocked",
    "CapturedStream",
    "ConfigError",
    "FailureClass",
    "HarnessConfig",
    "Lane",
    "ModelInfo",
    "ModelPrice",
    "ProcessResult",
    "ProviderConfig",
    "ProviderInfo",
    "Usage",
    "Verdict",
    "config_path",
    "harness_home",
    "load_config",
]
