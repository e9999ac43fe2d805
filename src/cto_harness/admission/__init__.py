"""Provider admission: discovery, toolchains, builds from a pin, the admitted store.

The route (DESIGN.md §6): ``discover`` clones the source at a pinned commit (evidence
only) → ``check_toolchain``/``bootstrap_bun`` make the build tools present →
``build`` runs the catalog's build command in a fresh checkout → ``admit`` copies the
binary into a content-addressed read-only store after it self-identifies. At run time
``resolve_provider_executable`` returns only admitted, re-hashed bytes or a ``Blocked``.
"""

from cto_harness.admission._build import build, check_artifact, latest_good_build, list_builds
from cto_harness.admission._catalog import (
    CatalogEntry,
    Identify,
    KnownDigest,
    ToolRequirement,
    catalog_entry,
    load_catalog,
)
from cto_harness.admission._discover import discover, latest_discovery, load_discovery
from cto_harness.admission._errors import (
    AdmissionError,
    AdmitError,
    BuildError,
    CatalogError,
    DiscoveryError,
    PinError,
    StoreError,
    ToolchainError,
)
from cto_harness.admission._git import redact_url, validate_pin
from cto_harness.admission._overview import (
    ProviderOverview,
    ProviderSummary,
    list_providers,
    show_provider,
)
from cto_harness.admission._records import (
    AdmissionRecord,
    ArtifactInfo,
    BootstrapRecord,
    BuildRecord,
    DiscoveryRecord,
    IdentifyResult,
    ToolchainReport,
    ToolStatus,
    VerifyEntry,
    VerifyReport,
)
from cto_harness.admission._resolve import (
    ALLOW_UNADMITTED_ENV,
    Resolution,
    resolve_provider_executable,
)
from cto_harness.admission._selfcheck import digest_mismatch_selfcheck
from cto_harness.admission._store import (
    active_admissions,
    admission_dir,
    admit,
    list_admissions,
    load_admission,
    revoke,
    store_root,
    verify,
)
from cto_harness.admission._toolchain import (
    bootstrap_bun,
    check_toolchain,
    remove_bun,
    write_toolchain_report,
)
from cto_harness.evidence import sha256_file

__all__ = [
    "ALLOW_UNADMITTED_ENV",
    "AdmissionError",
    "AdmissionRecord",
    "AdmitError",
    "ArtifactInfo",
    "BootstrapRecord",
    "BuildError",
    "BuildRecord",
    "CatalogEntry",
    "CatalogError",
    "DiscoveryError",
    "DiscoveryRecord",
    "Identify",
    "IdentifyResult",
    "KnownDigest",
    "PinError",
    "ProviderOverview",
    "ProviderSummary",
    "Resolution",
    "StoreError",
    "ToolRequirement",
    "ToolStatus",
    "ToolchainError",
    "ToolchainReport",
    "VerifyEntry",
    "VerifyReport",
    "active_admissions",
    "admission_dir",
    "admit",
    "bootstrap_bun",
    "build",
    "catalog_entry",
    "check_artifact",
    "check_toolchain",
    "digest_mismatch_selfcheck",
    "discover",
    "latest_discovery",
    "latest_good_build",
    "list_admissions",
    "list_builds",
    "list_providers",
    "load_admission",
    "load_catalog",
    "load_discovery",
    "redact_url",
    "remove_bun",
    "resolve_provider_executable",
    "revoke",
    "sha256_file",
    "show_provider",
    "store_root",
    "validate_pin",
    "verify",
    "write_toolchain_report",
]
