"""Self-checks that prove the fail-closed paths: health, validate case, certify."""

from cto_harness.selfcheck._certify import (
    CERTIFIABLE,
    REAL_CLIENTS,
    LoopbackUnreachable,
    UncertifiableProviderError,
    certify,
    probe_loopback,
    real_client_checks,
    run_scripted,
)
from cto_harness.selfcheck._digest_check import digest_mismatch_selfcheck
from cto_harness.selfcheck._health import run_health
from cto_harness.selfcheck._lab import CheckResult, Lab, SuiteResult
from cto_harness.selfcheck._listener import CountingListener, host_address
from cto_harness.selfcheck._validate_case import tampered_digest, validate_case

__all__ = [
    "CERTIFIABLE",
    "REAL_CLIENTS",
    "CheckResult",
    "CountingListener",
    "Lab",
    "LoopbackUnreachable",
    "SuiteResult",
    "UncertifiableProviderError",
    "certify",
    "digest_mismatch_selfcheck",
    "host_address",
    "probe_loopback",
    "real_client_checks",
    "run_health",
    "run_scripted",
    "tampered_digest",
    "validate_case",
]
