"""Provider admission: discovery, toolchains, builds from a pin, the admitted store.

The route (DESIGN.md §6): ``discover`` clones the source at a pinned commit (evidence
only) → ``check_toolchain``/``bootstrap_bun`` make the build tools present →
``build`` runs the catalog's build command in a fresh checkout → ``admit`` copies the
binary into a content-addressed read-only store after it self-identifies. At run time
``resolve_provider_executable`` returns only admitted, re-hashed bytes or a ``Blocked``.
"""

from cto_harness.evidence import sha256_file
from cto_harness.supply_chain._build import (
    build,
    build_checkout,
    build_source,
    check_artifact,
    latest_good_build,
    list_builds,
    verify_reproducible,
)
from cto_harness.supply_chain._catalog import (
    CatalogEntry,
    Identify,
    KnownDigest,
    ToolRequirement,
    catalog_entry,
    load_catalog,
)
from cto_harness.supply_chain._client_catalog import (
    ClientCatalogError,
    ClientIdentify,
    ClientSpec,
    client_spec,
    load_clients,
)
from cto_harness.supply_chain._client_install import (
    InstallError,
    InstallRecord,
    client_prefix,
    install_client,
    installed_record,
)
from cto_harness.supply_chain._client_tree import read_launcher, tree_sha256, verify_launcher
from cto_harness.supply_chain._discover import discover, latest_discovery, load_discovery
from cto_harness.supply_chain._errors import (
    AdmissionError,
    AdmitError,
    BuildError,
    CatalogError,
    DiscoveryError,
    PinError,
    StoreError,
    ToolchainError,
)
from cto_harness.supply_chain._git import redact_url, validate_pin
from cto_harness.supply_chain._overview import (
    ProviderOverview,
    ProviderSummary,
    list_providers,
    show_provider,
)
from cto_harness.supply_chain._records import (
    AdmissionRecord,
    ArtifactInfo,
    BootstrapRecord,
    BuildRecord,
    DiscoveryRecord,
    IdentifyResult,
    LockfileInfo,
    Reproducibility,
    ToolchainReport,
    ToolStatus,
    VerifyEntry,
    VerifyReport,
)
from cto_harness.supply_chain._resolve import (
    ALLOW_UNADMITTED_ENV,
    Resolution,
    resolve_provider_executable,
)
from cto_harness.supply_chain._store import (
    active_admissions,
    admission_dir,
    admit,
    list_admissions,
    load_admission,
    revoke,
    store_root,
    verify,
)
from cto_harness.supply_chain._toolchain import (
    bootstrap_bun,
    check_toolchain,
    remove_bun,
    write_toolchain_report,
)

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
    "ClientCatalogError",
    "ClientIdentify",
    "ClientSpec",
    "DiscoveryError",
    "DiscoveryRecord",
    "Identify",
    "IdentifyResult",
    "InstallError",
    "InstallRecord",
    "KnownDigest",
    "LockfileInfo",
    "PinError",
    "ProviderOverview",
    "ProviderSummary",
    "Reproducibility",
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
    "build_checkout",
    "build_source",
    "catalog_entry",
    "check_artifact",
    "check_toolchain",
    "client_prefix",
    "client_spec",
    "discover",
    "install_client",
    "installed_record",
    "latest_discovery",
    "latest_good_build",
    "list_admissions",
    "list_builds",
    "list_providers",
    "load_admission",
    "load_catalog",
    "load_clients",
    "load_discovery",
    "read_launcher",
    "redact_url",
    "remove_bun",
    "resolve_provider_executable",
    "revoke",
    "sha256_file",
    "show_provider",
    "store_root",
    "tree_sha256",
    "validate_pin",
    "verify",
    "verify_launcher",
    "verify_reproducible",
    "write_toolchain_report",
]
