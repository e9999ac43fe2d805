"""Source discovery: clone the source, check out the pin, verify HEAD, record it.

A discovery clone is evidence that the pinned commit exists at the source and what it
contains. Nothing is ever built or executed from it; builds make their own checkout.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cto_harness.supply_chain._atomic import write_json
from cto_harness.supply_chain._catalog import CatalogEntry
from cto_harness.supply_chain._errors import DiscoveryError, UnknownProviderName
from cto_harness.supply_chain._git import (
    clone_at_pin,
    commit_meta,
    git_version,
    redact_url,
    rev_parse,
    url_secrets,
    validate_pin,
)
from cto_harness.supply_chain._records import DiscoveryRecord
from cto_harness.supply_chain._util import check_name, force_rmtree, iso, utc_now


def discovery_dir(home: Path, name: str, pin: str) -> Path:
    return home / "discovery" / name / pin


def load_discovery(home: Path, name: str, pin: str) -> DiscoveryRecord | None:
    path = discovery_dir(home, name, pin) / "discovery.json"
    if not path.is_file():
        return None
    return DiscoveryRecord.model_validate_json(path.read_text("utf-8"))


def latest_discovery(home: Path, name: str) -> DiscoveryRecord | None:
    root = home / "discovery" / name
    records = []
    if root.is_dir():
        for child in root.iterdir():
            path = child / "discovery.json"
            if path.is_file():
                records.append(DiscoveryRecord.model_validate_json(path.read_text("utf-8")))
    return max(records, key=lambda r: r.discovered_at, default=None)


def discover(
    name: str,
    *,
    home: Path,
    environ: Mapping[str, str],
    entry: CatalogEntry | None = None,
    source: str | None = None,
    pin: str | None = None,
) -> DiscoveryRecord:
    """Clone ``source`` (default: the catalog's) at ``pin`` into the discovery area.

    Raises:
        PinError: the pin is not a full commit id or does not exist at the source.
        DiscoveryError: the clone failed (message redacted).
    """
    check_name(name)
    url = source or (entry.source_url if entry else None)
    raw_pin = pin or (entry.pin if entry else None)
    if not url or not raw_pin:
        # Not the catalog's and not fully given: the caller's mistake, a usage error.
        raise (UnknownProviderName if entry is None else DiscoveryError)(
            f"no catalog entry for {name!r}: give both --source URL and --pin SHA"
        )
    commit = validate_pin(raw_pin)
    shown = redact_url(url)
    secrets = url_secrets(url)
    final = discovery_dir(home, name, commit)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{commit[:12]}-", dir=final.parent))
    try:
        checkout = staging / "checkout"
        head = clone_at_pin(url, checkout, commit, environ=environ, shown_source=shown,
                            secrets=secrets)
        date, subject = commit_meta(checkout, environ=environ)
        record = DiscoveryRecord(
            name=name,
            source_url=shown,
            pin=commit,
            head=head,
            head_matches_pin=head == commit,
            tree=rev_parse(checkout, "HEAD^{tree}", environ=environ),
            commit_date=date,
            commit_subject=subject,
            checkout=str(final / "checkout"),
            discovered_at=iso(utc_now()),
            git_version=git_version(environ),
        )
        write_json(staging / "discovery.json", record)
        if final.exists():
            force_rmtree(final)
        os.replace(staging, final)
    except BaseException:
        force_rmtree(staging)
        raise
    return record
