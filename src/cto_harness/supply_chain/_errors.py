"""Admission errors: one class per refusal family, each message a single clear line.

The CLI prints ``str(exc)`` as is, so messages name the thing refused and why, and
never contain credentials (source URLs are redacted before they reach a message).
"""

from __future__ import annotations


class AdmissionError(Exception):
    """Base class: an admission step refused or failed."""


class CatalogError(AdmissionError):
    """A catalog entry is missing or invalid."""


class PinError(AdmissionError):
    """A pin is not a full 40-hex commit, or does not exist in the source."""


class DiscoveryError(AdmissionError):
    """Cloning or verifying the source failed."""


class ToolchainError(AdmissionError):
    """A required build tool is missing or cannot be bootstrapped."""


class BuildError(AdmissionError):
    """The build failed, timed out, or produced an unacceptable artifact."""


class AdmitError(AdmissionError):
    """A binary was refused admission."""


class StoreError(AdmissionError):
    """The admitted store is inconsistent or the requested record does not exist."""


class UnknownProviderName(CatalogError):
    """No catalog, client or admission knows the name: the caller's mistake (a usage error)."""
