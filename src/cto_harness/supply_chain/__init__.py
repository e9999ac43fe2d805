"""Provider admission: discovery, toolchains, builds from a pin, the admitted store.

The route (DESIGN.md §6): ``discover`` clones the source at a pinned commit (evidence
only) → ``check_toolchain``/``bootstrap_bun`` make the build tools present →
``build`` runs the catalog's build command in a fresh checkout → ``admit`` copies the
binary into a content-addressed read-only store after it self-identifies. At run time
``resolve_provider_executable`` returns only admitted, re-hashed bytes or a ``Blocked``.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        UnknownProviderName,
    )
    from cto_harness.supply_chain._git import redact_url, validate_pin
    from cto_harness.supply_chain._overview import (
        ProviderOverview,
        ProviderSummary,
        install_hint,
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

_LAZY: dict[str, str] = {
    "ALLOW_UNADMITTED_ENV": "cto_harness.supply_chain._resolve:ALLOW_UNADMITTED_ENV",
    "AdmissionError": "cto_harness.supply_chain._errors:AdmissionError",
    "AdmissionRecord": "cto_harness.supply_chain._records:AdmissionRecord",
    "AdmitError": "cto_harness.supply_chain._errors:AdmitError",
    "ArtifactInfo": "cto_harness.supply_chain._records:ArtifactInfo",
    "BootstrapRecord": "cto_harness.supply_chain._records:BootstrapRecord",
    "BuildError": "cto_harness.supply_chain._errors:BuildError",
    "BuildRecord": "cto_harness.supply_chain._records:BuildRecord",
    "CatalogEntry": "cto_harness.supply_chain._catalog:CatalogEntry",
    "CatalogError": "cto_harness.supply_chain._errors:CatalogError",
    "ClientCatalogError": "cto_harness.supply_chain._client_catalog:ClientCatalogError",
    "ClientIdentify": "cto_harness.supply_chain._client_catalog:ClientIdentify",
    "ClientSpec": "cto_harness.supply_chain._client_catalog:ClientSpec",
    "DiscoveryError": "cto_harness.supply_chain._errors:DiscoveryError",
    "DiscoveryRecord": "cto_harness.supply_chain._records:DiscoveryRecord",
    "Identify": "cto_harness.supply_chain._catalog:Identify",
    "IdentifyResult": "cto_harness.supply_chain._records:IdentifyResult",
    "InstallError": "cto_harness.supply_chain._client_install:InstallError",
    "InstallRecord": "cto_harness.supply_chain._client_install:InstallRecord",
    "KnownDigest": "cto_harness.supply_chain._catalog:KnownDigest",
    "LockfileInfo": "cto_harness.supply_chain._records:LockfileInfo",
    "PinError": "cto_harness.supply_chain._errors:PinError",
    "ProviderOverview": "cto_harness.supply_chain._overview:ProviderOverview",
    "ProviderSummary": "cto_harness.supply_chain._overview:ProviderSummary",
    "Reproducibility": "cto_harness.supply_chain._records:Reproducibility",
    "Resolution": "cto_harness.supply_chain._resolve:Resolution",
    "StoreError": "cto_harness.supply_chain._errors:StoreError",
    "ToolRequirement": "cto_harness.supply_chain._catalog:ToolRequirement",
    "ToolStatus": "cto_harness.supply_chain._records:ToolStatus",
    "ToolchainError": "cto_harness.supply_chain._errors:ToolchainError",
    "ToolchainReport": "cto_harness.supply_chain._records:ToolchainReport",
    "VerifyEntry": "cto_harness.supply_chain._records:VerifyEntry",
    "VerifyReport": "cto_harness.supply_chain._records:VerifyReport",
    "active_admissions": "cto_harness.supply_chain._store:active_admissions",
    "admission_dir": "cto_harness.supply_chain._store:admission_dir",
    "admit": "cto_harness.supply_chain._store:admit",
    "bootstrap_bun": "cto_harness.supply_chain._toolchain:bootstrap_bun",
    "build": "cto_harness.supply_chain._build:build",
    "build_checkout": "cto_harness.supply_chain._build:build_checkout",
    "build_source": "cto_harness.supply_chain._build:build_source",
    "catalog_entry": "cto_harness.supply_chain._catalog:catalog_entry",
    "check_artifact": "cto_harness.supply_chain._build:check_artifact",
    "check_toolchain": "cto_harness.supply_chain._toolchain:check_toolchain",
    "client_prefix": "cto_harness.supply_chain._client_install:client_prefix",
    "client_spec": "cto_harness.supply_chain._client_catalog:client_spec",
    "discover": "cto_harness.supply_chain._discover:discover",
    "install_client": "cto_harness.supply_chain._client_install:install_client",
    "installed_record": "cto_harness.supply_chain._client_install:installed_record",
    "latest_discovery": "cto_harness.supply_chain._discover:latest_discovery",
    "latest_good_build": "cto_harness.supply_chain._build:latest_good_build",
    "list_admissions": "cto_harness.supply_chain._store:list_admissions",
    "list_builds": "cto_harness.supply_chain._build:list_builds",
    "list_providers": "cto_harness.supply_chain._overview:list_providers",
    "install_hint": "cto_harness.supply_chain._overview:install_hint",
    "UnknownProviderName": "cto_harness.supply_chain._errors:UnknownProviderName",
    "load_admission": "cto_harness.supply_chain._store:load_admission",
    "load_catalog": "cto_harness.supply_chain._catalog:load_catalog",
    "load_clients": "cto_harness.supply_chain._client_catalog:load_clients",
    "load_discovery": "cto_harness.supply_chain._discover:load_discovery",
    "read_launcher": "cto_harness.supply_chain._client_tree:read_launcher",
    "redact_url": "cto_harness.supply_chain._git:redact_url",
    "remove_bun": "cto_harness.supply_chain._toolchain:remove_bun",
    "resolve_provider_executable": "cto_harness.supply_chain._resolve:resolve_provider_executable",
    "revoke": "cto_harness.supply_chain._store:revoke",
    "sha256_file": "cto_harness.evidence:sha256_file",
    "show_provider": "cto_harness.supply_chain._overview:show_provider",
    "store_root": "cto_harness.supply_chain._store:store_root",
    "tree_sha256": "cto_harness.supply_chain._client_tree:tree_sha256",
    "validate_pin": "cto_harness.supply_chain._git:validate_pin",
    "verify": "cto_harness.supply_chain._store:verify",
    "verify_launcher": "cto_harness.supply_chain._client_tree:verify_launcher",
    "verify_reproducible": "cto_harness.supply_chain._build:verify_reproducible",
    "write_toolchain_report": "cto_harness.supply_chain._toolchain:write_toolchain_report",
}
"""Exported name -> ``module:attribute``; imported on first use (PEP 562), so importing the
package costs nothing until a name is used."""


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

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
    "UnknownProviderName",
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
    "install_hint",
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
