"""Run-time resolution: which bytes may run as a real provider, or why none may.

The real lane runs only admitted bytes. An explicit ``CTO_HARNESS_<P>_BIN`` must hash to
a non-revoked admission of that provider; otherwise the newest non-revoked admission in
the store is used and its stored file re-hashed. Anything else is a ``Blocked`` gate
(no provider process starts). ``--unadmitted`` / ``CTO_HARNESS_ALLOW_UNADMITTED=1``
lets a local experiment run an unadmitted file in the separate ``unadmitted`` lane,
whose reports carry ``admission: null`` and can never pass as real-lane evidence.
The runner re-hashes the returned executable again immediately before exec.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cto_harness.core import Blocked, ProviderInfo
from cto_harness.evidence import sha256_file
from cto_harness.supply_chain._errors import StoreError
from cto_harness.supply_chain._records import AdmissionRecord
from cto_harness.supply_chain._store import active_admissions, load_admission

ALLOW_UNADMITTED_ENV = "CTO_HARNESS_ALLOW_UNADMITTED"


@dataclass(frozen=True)
class Resolution:
    """The outcome of resolving a provider executable; ``blocked`` set means do not run."""

    executable: Path | None
    sha256: str | None
    admission: dict[str, Any] | None
    """The admission record as a dict plus ``expected_sha256``/``observed_sha256``."""
    lane: Literal["real", "unadmitted"]
    blocked: Blocked | None

    def provider_info(self, name: str) -> ProviderInfo:
        return ProviderInfo(
            name=name,
            executable=str(self.executable) if self.executable else None,
            sha256=self.sha256,
            admission=self.admission,
        )


def _admission_dict(record: AdmissionRecord, observed: str) -> dict[str, Any]:
    data = record.model_dump(mode="json")
    data["expected_sha256"] = record.sha256
    data["observed_sha256"] = observed
    data["record"] = str(Path(record.path).parent / "admission.json")
    return data


def _blocked(cls: Literal["provider-unavailable", "provider-not-admitted",
                          "provider-digest-mismatch"], reason: str, *,
             executable: Path | None = None, sha256: str | None = None,
             admission: dict[str, Any] | None = None) -> Resolution:
    return Resolution(executable=executable, sha256=sha256, admission=admission, lane="real",
                      blocked=Blocked(cls, reason, f"{cls}.txt"))


def _check_executable(path: Path) -> str | None:
    """Why ``path`` cannot be run, or None when it is an executable regular file."""
    if not path.exists():
        return "does not exist"
    if not path.is_file():
        return "is not a regular file"
    if not os.access(path, os.X_OK):
        return "is not executable"
    return None


def resolve_provider_executable(
    name: str,
    *,
    environ: Mapping[str, str],
    home: Path,
    bin_env_var: str,
    allow_unadmitted: bool,
) -> Resolution:
    """Resolve provider ``name`` to admitted bytes, or a ``Blocked`` gate saying why not."""
    allow = allow_unadmitted or environ.get(ALLOW_UNADMITTED_ENV) == "1"
    explicit = environ.get(bin_env_var)
    try:
        if explicit:
            return _resolve_explicit(name, Path(explicit).expanduser(), bin_env_var, home, allow)
        return _resolve_store(name, home)
    except StoreError as exc:
        return _blocked("provider-not-admitted", f"{name}: admitted store unusable: {exc}")


def _resolve_explicit(name: str, given: Path, var: str, home: Path, allow: bool) -> Resolution:
    problem = _check_executable(given)
    if problem is not None:
        return _blocked("provider-unavailable", f"{var}={given} {problem}")
    real = given.resolve()
    try:
        digest = sha256_file(real)
    except OSError as exc:
        return _blocked("provider-unavailable", f"{var}={given} cannot be read: {exc}")
    record = load_admission(home, digest)
    if record is not None and record.name == name and not record.revoked:
        return Resolution(executable=real, sha256=digest, admission=_admission_dict(record, digest),
                          lane="real", blocked=None)
    if allow:
        return Resolution(executable=real, sha256=digest, admission=None, lane="unadmitted",
                          blocked=None)
    if record is not None and record.name == name:
        why = f"was admitted but revoked at {record.revoked_at}"
    elif record is not None:
        why = f"is admitted as provider {record.name!r}, not {name!r}"
    else:
        why = "matches no admission record"
    return _blocked(
        "provider-not-admitted",
        f"{var}={given} has sha256 {digest}, which {why}; admit it with `cto-harness provider "
        f"admit {name} --binary {given}` (or use --unadmitted for a local experiment)",
        executable=real, sha256=digest,
    )


def _resolve_store(name: str, home: Path) -> Resolution:
    active = active_admissions(home, name)
    if not active:
        return _blocked(
            "provider-unavailable",
            f"no admitted {name} executable in {home / 'admitted'} and no explicit binary set; "
            f"run `cto-harness provider build {name}` and `cto-harness provider admit {name}`",
        )
    record = active[0]
    stored = Path(record.path)
    problem = _check_executable(stored)
    if problem is not None:
        return _blocked("provider-unavailable",
                        f"admitted {name} file {stored} {problem} (expected sha256 {record.sha256})")
    try:
        observed = sha256_file(stored)
    except OSError as exc:
        return _blocked("provider-unavailable", f"admitted {name} file {stored} unreadable: {exc}")
    if observed != record.sha256:
        return _blocked(
            "provider-digest-mismatch",
            f"admitted {name} file {stored}: expected sha256 {record.sha256}, observed {observed}",
            executable=stored, sha256=observed, admission=_admission_dict(record, observed),
        )
    return Resolution(executable=stored, sha256=observed,
                      admission=_admission_dict(record, observed), lane="real", blocked=None)
