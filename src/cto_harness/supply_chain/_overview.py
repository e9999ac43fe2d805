"""Read-only views for ``provider list`` and ``provider show``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from cto_harness.supply_chain._build import list_builds
from cto_harness.supply_chain._catalog import CatalogEntry
from cto_harness.supply_chain._discover import latest_discovery
from cto_harness.supply_chain._errors import CatalogError
from cto_harness.supply_chain._git import redact_url
from cto_harness.supply_chain._records import AdmissionRecord, BuildRecord, DiscoveryRecord
from cto_harness.supply_chain._store import list_admissions
from cto_harness.supply_chain._util import check_name


class ProviderSummary(BaseModel):
    name: str
    in_catalog: bool
    origin: str | None
    source_url: str | None
    pin: str | None
    active_sha256: str | None
    """The admission resolution would use (newest non-revoked), if any."""
    admissions: int
    revoked: int


class ProviderOverview(BaseModel):
    name: str
    catalog: dict[str, Any] | None
    bin_env_var: str
    discovery: DiscoveryRecord | None
    builds: list[BuildRecord]
    admissions: list[AdmissionRecord]
    active_sha256: str | None


def _catalog_view(entry: CatalogEntry) -> dict[str, Any]:
    data = entry.model_dump(mode="json")
    data["source_url"] = redact_url(entry.source_url)
    data["bin_env_var"] = entry.bin_env_var
    return data


def _active(records: list[AdmissionRecord]) -> str | None:
    live = [r for r in records if not r.revoked]
    return live[-1].sha256 if live else None


def list_providers(home: Path, catalog: dict[str, CatalogEntry]) -> list[ProviderSummary]:
    """Every catalog provider plus any admitted name no longer in the catalog."""
    by_name: dict[str, list[AdmissionRecord]] = {}
    for record in list_admissions(home):
        by_name.setdefault(record.name, []).append(record)
    out = []
    for name in sorted(set(catalog) | set(by_name)):
        entry = catalog.get(name)
        records = by_name.get(name, [])
        out.append(ProviderSummary(
            name=name, in_catalog=entry is not None, origin=entry.origin if entry else None,
            source_url=redact_url(entry.source_url) if entry else None,
            pin=entry.pin if entry else None, active_sha256=_active(records),
            admissions=len(records), revoked=sum(r.revoked for r in records),
        ))
    return out


def show_provider(name: str, *, home: Path, catalog: dict[str, CatalogEntry]) -> ProviderOverview:
    """Catalog entry, latest discovery, builds and admissions for one provider."""
    check_name(name)
    entry = catalog.get(name)
    records = list_admissions(home, name)
    discovery = latest_discovery(home, name)
    builds = list_builds(home, name)
    if entry is None and not records and discovery is None and not builds:
        known = ", ".join(sorted(catalog)) or "none"
        raise CatalogError(f"unknown provider {name!r} (catalog: {known})")
    env_var = entry.bin_env_var if entry else f"CTO_HARNESS_{name.upper().replace('-', '_')}_BIN"
    return ProviderOverview(
        name=name, catalog=_catalog_view(entry) if entry else None, bin_env_var=env_var,
        discovery=discovery, builds=builds, admissions=records, active_sha256=_active(records),
    )
