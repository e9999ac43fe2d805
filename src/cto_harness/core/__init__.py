"""Shared vocabulary with no dependency on any other room of the harness."""

from cto_harness.core._config import (
    ConfigError,
    HarnessConfig,
    ModelPrice,
    ProviderConfig,
    config_path,
    harness_home,
    load_config,
)
from cto_harness.core._process import CapturedStream, ProcessResult
from cto_harness.core._types import Blocked, ModelInfo, ProviderInfo, Usage
from cto_harness.core._vocab import EXIT_CODES, USAGE_ERROR_EXIT, FailureClass, Lane, Verdict

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
