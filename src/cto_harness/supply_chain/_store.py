"""The admitted store: content-addressed, read-only copies of admitted executables.

Layout: ``<home>/admitted/sha256/<digest>/`` holds the binary (mode 0555),
``admission.json`` and ``provenance.intoto.json`` (both 0444); the directory itself is
0555. There is no separate index: the store is scanned, so an index can never disagree
with the records. Revocation rewrites ``admission.json`` with ``revoked: true`` and
keeps the bytes as evidence; resolution refuses revoked records.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from cto_harness.evidence import sha256_file
from cto_harness.supply_chain._atomic import write_json
from cto_harness.supply_chain._build import latest_good_build, list_builds
from cto_harness.supply_chain._catalog import CatalogEntry, registry_digest
from cto_harness.supply_chain._discover import latest_discovery
from cto_harness.supply_chain._errors import AdmitError, StoreError
from cto_harness.supply_chain._git import redact_url
from cto_harness.supply_chain._identify import identify
from cto_harness.supply_chain._records import (
    SYNTHETIC_MARKER,
    AdmissionRecord,
    BuildRecord,
    VerifyEntry,
    VerifyReport,
)
from cto_harness.supply_chain._toolchain import search_path
from cto_harness.supply_chain._util import (
    check_name,
    check_sha256,
    force_rmtree,
    iso,
    utc_now,
)

RO_FILE = 0o555
RO_RECORD = 0o444
RO_DIR = 0o555
BUILD_TYPE = "urn:cto-harness:provider-build:v1"
SUPPLIED_TYPE = "urn:cto-harness:supplied-binary:v1"


def store_root(home: Path) -> Path:
    return home / "admitted" / "sha256"


def admission_dir(home: Path, digest: str) -> Path:
    return store_root(home) / digest


def load_admission(home: Path, digest: str) -> AdmissionRecord | None:
    """The record for ``digest``, or None when those bytes were never admitted."""
    path = admission_dir(home, digest) / "admission.json"
    if not path.is_file():
        return None
    try:
        return AdmissionRecord.model_validate_json(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"admission record {path} is unreadable: {exc}") from exc


def list_admissions(home: Path, name: str | None = None) -> list[AdmissionRecord]:
    """Admission records (revoked included), oldest first."""
    root = store_root(home)
    records: list[AdmissionRecord] = []
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if child.name.startswith(".") or not child.is_dir():
                continue
            record = load_admission(home, child.name)
            if record is not None and (name is None or record.name == name):
                records.append(record)
    return sorted(records, key=lambda r: r.admitted_at)


def active_admissions(home: Path, name: str) -> list[AdmissionRecord]:
    """Non-revoked admissions of ``name``, newest first (the first is what runs)."""
    return [r for r in reversed(list_admissions(home, name)) if not r.revoked]


def provenance_statement(
    *, subject_name: str, digest: str, source_url: str, pin: str,
    build: BuildRecord | None, admitted: datetime, pin_kind: str = "git",
) -> dict[str, Any]:
    """An in-toto Statement v1 with a SLSA v1 provenance predicate for the binary.

    The resolved dependency is the source at its commit (``gitCommit``), or for a
    registry client the package archive named by its registry integrity digest.
    """
    if pin_kind == "registry":
        dependency: dict[str, Any] = {"uri": source_url, "digest": registry_digest(pin)}
    else:
        dependency = {"uri": f"git+{source_url}@{pin}", "digest": {"gitCommit": pin}}
    if build is not None:
        definition: dict[str, Any] = {
            "buildType": BUILD_TYPE,
            "externalParameters": {"source": source_url, "pin": pin, "command": build.command},
            "internalParameters": {
                "toolchain": {t.name: t.version_output for t in build.toolchain.tools},
                "modifiedTrackedFiles": build.modified_tracked_files,
                "artifact": build.artifact.path if build.artifact else None,
                "installCommand": build.install_command,
                "lockfile": build.lockfile.model_dump() if build.lockfile else None,
                "sourceDateEpoch": build.source_date_epoch,
                "reproducibility": build.reproducibility.model_dump() if build.reproducibility else None,
            },
            "resolvedDependencies": [dependency],
        }
        metadata = {"invocationId": build.build_dir, "startedOn": build.started_at,
                    "finishedOn": build.finished_at}
    else:
        definition = {
            "buildType": SUPPLIED_TYPE,
            "externalParameters": {"source": source_url, "pin": pin, "command": None},
            "internalParameters": {"builtHere": False},
            "resolvedDependencies": [dependency],
        }
        metadata = {"startedOn": iso(admitted), "finishedOn": iso(admitted)}
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": subject_name, "digest": {"sha256": digest}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": definition,
            "runDetails": {"builder": {"id": "cto-harness"}, "metadata": metadata},
        },
    }


def _refuse_binary(path: Path, home: Path) -> Path:
    """Resolve a supplied binary, refusing what must never be admitted."""
    if not path.exists():
        raise AdmitError(f"binary {path} does not exist")
    real = path.resolve()
    if real.is_dir():
        raise AdmitError(f"binary {path} is a directory, not an executable file")
    if not real.is_file():
        raise AdmitError(f"binary {path} is not a regular file")
    if real.is_relative_to((home / "discovery").resolve()):
        raise AdmitError(
            f"binary {path} is inside a discovery clone; discovery is evidence only, "
            "build with `cto-harness provider build`"
        )
    if not os.access(real, os.X_OK):
        raise AdmitError(f"binary {path} is not executable")
    return real


def admit(
    entry: CatalogEntry,
    *,
    home: Path,
    environ: Mapping[str, str],
    binary: Path | None = None,
    expect_sha256: str | None = None,
    synthetic: bool = False,
) -> tuple[AdmissionRecord, bool]:
    """Admit a binary as provider ``entry.name``; return (record, newly_admitted).

    Without ``binary`` the latest successful build's artifact is admitted. The stored
    copy is hashed and must self-identify before the record is written. ``synthetic``
    marks a test double (the self-check lab's ``ca``) in the record; without it, a binary
    that identifies itself as synthetic is refused.

    Raises:
        AdmitError: refused (missing, directory, digest mismatch, identification failed,
            a synthetic double admitted as a real provider, digest previously revoked or
            admitted under another name or synthetic-ness).
    """
    build: BuildRecord | None = None
    if binary is None:
        build = latest_good_build(home, entry.name)
        if build is None or build.artifact is None:
            raise AdmitError(
                f"no successful build of {entry.name}; run `cto-harness provider build "
                f"{entry.name}` or pass --binary PATH"
            )
        binary = Path(build.artifact.absolute)
    real = _refuse_binary(binary, home)
    digest = sha256_file(real)
    expected = check_sha256(expect_sha256, "--expect-sha256") if expect_sha256 else None
    if expected is not None and digest != expected:
        raise AdmitError(f"digest mismatch for {binary}: expected {expected}, observed {digest}")
    if build is None:
        build = next((b for b in reversed(list_builds(home, entry.name))
                      if b.ok and b.artifact and b.artifact.sha256 == digest), None)
    if build is not None and build.artifact is not None and build.artifact.sha256 != digest:
        raise AdmitError(
            f"build artifact {real} changed since its build (build recorded "
            f"{build.artifact.sha256}, now {digest})"
        )

    existing = load_admission(home, digest)
    if existing is not None:
        if existing.name != entry.name:
            raise AdmitError(f"digest {digest} is already admitted as provider {existing.name!r}")
        if existing.revoked:
            raise AdmitError(
                f"digest {digest} was revoked at {existing.revoked_at}; revoked bytes are "
                "not re-admitted"
            )
        if existing.synthetic != synthetic:
            kind = "a synthetic test double" if existing.synthetic else "a real (non-synthetic) provider"
            raise AdmitError(f"digest {digest} is already admitted as {kind} of {existing.name!r}")
        stored = Path(existing.path)
        if not stored.is_file() or sha256_file(stored) != digest:
            raise AdmitError(f"stored copy {stored} no longer matches {digest}; run verify")
        return existing, False

    root = store_root(home)
    root.mkdir(parents=True, exist_ok=True)
    final = admission_dir(home, digest)
    staging = Path(tempfile.mkdtemp(prefix=".admit-", dir=root))
    file_name = entry.artifact_name
    try:
        staged = staging / file_name
        shutil.copyfile(real, staged)
        os.chmod(staged, RO_FILE)
        if sha256_file(staged) != digest:
            raise AdmitError(f"{binary} changed while being admitted; try again")
        path_value = search_path(home, environ, entry.bun_version)
        ident = identify(staged, entry.identify, path_value=path_value, environ=environ)
        if not synthetic and SYNTHETIC_MARKER in ident.output:
            raise AdmitError(
                f"{binary} identifies itself as a synthetic test double ({SYNTHETIC_MARKER!r} in "
                f"`{' '.join([file_name, *entry.identify.args])}`), not {entry.name}; refusing to "
                f"admit it as the real {entry.name}"
            )
        if not ident.ok:
            missing = [p for p, hit in zip(ident.patterns, ident.matched, strict=True) if not hit]
            why = ("timed out" if ident.timed_out else
                   f"exit {ident.exit_code}" if missing == [] else f"output lacks {missing}")
            excerpt = " ".join(ident.output.split())[:200]
            raise AdmitError(
                f"{binary} failed self-identification as {entry.name} "
                f"({' '.join([file_name, *entry.identify.args])}: {why}); output: {excerpt!r}"
            )
        stored_path = final / file_name
        ident = ident.model_copy(update={"argv": [str(stored_path), *entry.identify.args]})
        admitted = utc_now()
        discovered = None if build else latest_discovery(home, entry.name)
        source_url = (build.source_url if build else discovered.source_url if discovered
                      else redact_url(entry.source_url))
        pin = build.pin if build else discovered.pin if discovered else entry.pin
        repro = build.reproducibility if build else None
        known = next((k.note or "known digest" for k in entry.known_digests
                      if k.sha256 == digest), None)
        record = AdmissionRecord(
            name=entry.name, sha256=digest, file_name=file_name, path=str(stored_path),
            bytes=staged.stat().st_size, source_url=source_url, pin=pin,
            built_here=build is not None,
            build_command=list(build.command) if build else None,
            build=build,
            build_record=str(Path(build.build_dir) / "build.json") if build else None,
            binary_origin=str(binary),
            toolchain=list(build.toolchain.tools) if build else None,
            identify=ident, expect_sha256=expected, known_digest_note=known,
            reproducible=repro.reproducible if repro else None,
            reproducibility_digests=list(repro.digests) if repro else [],
            provenance=str(final / "provenance.intoto.json"),
            admitted_at=iso(admitted), synthetic=synthetic,
        )
        statement = provenance_statement(subject_name=file_name, digest=digest,
                                         source_url=source_url, pin=pin, build=build,
                                         admitted=admitted, pin_kind=entry.pin_kind)
        write_json(staging / "provenance.intoto.json", statement, mode=RO_RECORD)
        write_json(staging / "admission.json", record, mode=RO_RECORD)
        os.chmod(staging, RO_DIR)
        try:
            os.rename(staging, final)
        except OSError as exc:
            raise AdmitError(f"{final} appeared concurrently; try again ({exc})") from exc
    except BaseException:
        force_rmtree(staging)
        raise
    return record, True


@contextlib.contextmanager
def _writable(path: Path) -> Iterator[None]:
    os.chmod(path, stat.S_IRWXU)
    try:
        yield
    finally:
        os.chmod(path, RO_DIR)


def revoke(home: Path, name: str, *, sha256: str | None = None,
           reason: str | None = None) -> list[AdmissionRecord]:
    """Mark admissions of ``name`` revoked (all active ones, or the one ``sha256``).

    The bytes stay in the store as evidence; resolution refuses revoked records.
    """
    check_name(name)
    if sha256 is not None:
        digest = check_sha256(sha256)
        record = load_admission(home, digest)
        if record is None or record.name != name:
            raise StoreError(f"no admission of {name} with sha256 {digest}")
        if record.revoked:
            raise StoreError(f"{name} {digest} is already revoked (at {record.revoked_at})")
        targets = [record]
    else:
        targets = active_admissions(home, name)
        if not targets:
            raise StoreError(f"no active admission of {name} to revoke")
    when = iso(utc_now())
    done = []
    for record in targets:
        updated = record.model_copy(update={"revoked": True, "revoked_at": when,
                                            "revoked_reason": reason})
        folder = admission_dir(home, record.sha256)
        with _writable(folder):
            write_json(folder / "admission.json", updated, mode=RO_RECORD)
        done.append(updated)
    return done


def verify(home: Path, name: str) -> VerifyReport:
    """Re-hash every admitted file of ``name`` (revoked ones too) against its record."""
    check_name(name)
    entries = []
    for record in list_admissions(home, name):
        path = Path(record.path)
        observed: str | None = None
        error: str | None = None
        try:
            observed = sha256_file(path)
        except OSError as exc:
            error = f"cannot read: {exc.strerror or exc}"
        if path.parent.name != record.sha256:
            error = f"record lives in {path.parent.name}, not its digest"
        ok = error is None and observed == record.sha256
        if not ok and error is None:
            error = f"digest mismatch: expected {record.sha256}, observed {observed}"
        entries.append(VerifyEntry(sha256=record.sha256, path=str(path), observed_sha256=observed,
                                   ok=ok, revoked=record.revoked, error=error))
    report = VerifyReport(name=name, checked_at=iso(utc_now()), entries=entries,
                          ok=all(e.ok for e in entries))
    write_json(home / "admitted" / "verify" / f"{name}.json", report)
    return report
