"""Read-only views for ``provider list`` and ``provider show``.

One view of every provider the harness knows: the run adapters (``fake``, ``command``,
the real clients), the pinned registry clients (``clients.toml``), the source-built
catalog (``catalog.toml``) and the operator's ``[catalog.*]`` entries, each with its kind,
pin, admission state, whether ``run --provider`` accepts it and how to install it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from cto_harness.supply_chain._build import list_builds
from cto_harness.supply_chain._catalog import CatalogEntry
from cto_harness.supply_chain._client_catalog import ClientSpec, load_clients
from cto_harness.supply_chain._discover import latest_discovery
from cto_harness.supply_chain._errors import UnknownProviderName
from cto_harness.supply_chain._git import redact_url
from cto_harness.supply_chain._records import AdmissionRecord, BuildRecord, DiscoveryRecord
from cto_harness.supply_chain._store import list_admissions
from cto_harness.supply_chain._util import check_name

ProviderKind = Literal["builtin", "registry", "source", "command", "operator", "orphan"]
AdmissionState = Literal["builtin", "admitted", "revoked", "not admitted"]


class ProviderSummary(BaseModel):
    name: str
    kind: ProviderKind
    """``builtin``: ships inside the harness, nothing to admit (fake). ``registry``: a pinned
    client from clients.toml (``provider install``). ``source``: built from a pinned commit
    (``provider discover/build/admit``). ``command``: any admitted executable through the
    command adapter. ``operator``: a ``[catalog.*]`` entry of cto-harness.toml. ``orphan``:
    admitted earlier, in no catalog any more."""
    in_catalog: bool
    origin: str | None
    source_url: str | None
    pin: str | None
    """Git commit (source), registry integrity (registry), or None (builtin, command)."""
    version: str | None = None
    """Pinned release of a registry client."""
    admission: AdmissionState
    active_sha256: str | None
    """The admission resolution would use (newest non-revoked), if any."""
    admissions: int
    revoked: int
    runnable: bool
    """``cto-harness run --provider NAME`` accepts the name."""
    install: str
    """How to make it runnable (one line)."""


class ProviderOverview(BaseModel):
    name: str
    kind: ProviderKind
    install: str
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


def _kind(name: str, entry: CatalogEntry | None, client: ClientSpec | None, adapters: Sequence[str]) -> ProviderKind:
    if client is not None:
        return "registry"
    if entry is not None:
        return "source" if entry.origin == "builtin" else "operator"
    if name == "command":
        return "command"
    return "builtin" if name in adapters else "orphan"


def _install_hint(name: str, kind: ProviderKind, entry: CatalogEntry | None) -> str:
    if kind == "builtin":
        return "built in; nothing to install"
    if kind == "registry":
        return f"cto-harness provider install {name}"
    if kind == "command":
        return "admit any executable as a catalog entry with adapter = \"command\", or --unadmitted"
    if kind == "orphan":
        return "in no catalog any more; revoke it or add a catalog entry"
    route = f"cto-harness provider discover {name} && ... build {name} && ... admit {name}"
    if kind == "operator" and (entry is None or entry.adapter != "command"):
        return route + "; add adapter = \"command\" to its [catalog] entry to run it"
    return route


def list_providers(home: Path, catalog: dict[str, CatalogEntry], *,
                   adapters: Sequence[str] = ()) -> list[ProviderSummary]:
    """Every provider the harness knows, one row each.

    ``adapters`` are the names ``run --provider`` accepts through a registered adapter
    (``cto_harness.providers.provider_names()``; supply_chain does not import providers).
    Rows: the adapters, the registry clients, the catalog entries, and any admitted name
    in none of them.
    """
    clients = load_clients()
    by_name: dict[str, list[AdmissionRecord]] = {}
    for record in list_admissions(home):
        by_name.setdefault(record.name, []).append(record)
    out = []
    for name in sorted(set(adapters) | set(clients) | set(catalog) | set(by_name)):
        entry, client = catalog.get(name), clients.get(name)
        records = by_name.get(name, [])
        kind = _kind(name, entry, client, adapters)
        active = _active(records)
        state: AdmissionState = ("builtin" if kind == "builtin" else "admitted" if active
                                 else "revoked" if records else "not admitted")
        out.append(ProviderSummary(
            name=name, kind=kind, in_catalog=entry is not None or client is not None,
            origin=entry.origin if entry else ("builtin" if client else None),
            source_url=redact_url(entry.source_url) if entry else (client.source_url if client else None),
            pin=entry.pin if entry else (client.integrity if client else None),
            version=client.version if client else None,
            admission=state, active_sha256=active,
            admissions=len(records), revoked=sum(r.revoked for r in records),
            runnable=name in adapters or (entry is not None and entry.adapter == "command"),
            install=_install_hint(name, kind, entry),
        ))
    return out


def install_hint(name: str, catalog: dict[str, CatalogEntry], *, adapters: Sequence[str] = ()) -> str | None:
    """The ``install`` line of ``provider list`` for ``name``; None when the harness does not know it."""
    entry, client = catalog.get(name), load_clients().get(name)
    if entry is None and client is None and name not in adapters:
        return None
    return _install_hint(name, _kind(name, entry, client, adapters), entry)


def show_provider(name: str, *, home: Path, catalog: dict[str, CatalogEntry],
                  adapters: Sequence[str] = ()) -> ProviderOverview:
    """Catalog entry, latest discovery, builds and admissions for one provider.

    Raises:
        UnknownProviderName: no adapter, catalog, client or record knows ``name``.
    """
    check_name(name)
    entry, client = catalog.get(name), load_clients().get(name)
    records = list_admissions(home, name)
    discovery = latest_discovery(home, name)
    builds = list_builds(home, name)
    if entry is None and client is None and name not in adapters and not records and discovery is None \
            and not builds:
        known = ", ".join(sorted(set(catalog) | set(load_clients()) | set(adapters))) or "none"
        raise UnknownProviderName(f"unknown provider {name!r} (known: {known})")
    kind = _kind(name, entry, client, adapters)
    env_var = entry.bin_env_var if entry else f"CTO_HARNESS_{name.upper().replace('-', '_')}_BIN"
    return ProviderOverview(
        name=name, kind=kind, install=_install_hint(name, kind, entry),
        catalog=_catalog_view(entry) if entry else None, bin_env_var=env_var,
        discovery=discovery, builds=builds, admissions=records, active_sha256=_active(records),
    )
