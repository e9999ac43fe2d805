"""Run-time resolution: every branch of resolve_provider_executable."""

from __future__ import annotations

from pathlib import Path

import pytest

from cto_harness.selfcheck import digest_mismatch_selfcheck
from cto_harness.supply_chain import (
    admit,
    resolve_provider_executable,
    revoke,
    sha256_file,
)

from .conftest import Harness, toy_exe

VAR = "CTO_HARNESS_TOY_BIN"


def _resolve(harness: Harness, allow: bool = False, **env: str):  # type: ignore[no-untyped-def]
    return resolve_provider_executable("toy", environ={**harness.environ, **env},
                                       home=harness.home, bin_env_var=VAR,
                                       allow_unadmitted=allow)


@pytest.fixture
def admitted(harness: Harness, tmp_path: Path) -> Path:
    exe = toy_exe(tmp_path / "supplied" / "toy")
    admit(harness.entry(), home=harness.home, environ=harness.environ, binary=exe)
    return exe


def test_store_lane_real(harness: Harness, admitted: Path) -> None:
    res = _resolve(harness)
    digest = sha256_file(admitted)
    assert res.blocked is None and res.lane == "real" and res.sha256 == digest
    assert res.executable == harness.home / "admitted" / "sha256" / digest / "toy"
    assert res.admission is not None
    assert res.admission["source_url"] == harness.repo.url
    assert res.admission["pin"] == harness.repo.pin
    assert res.admission["expected_sha256"] == res.admission["observed_sha256"] == digest
    info = res.provider_info("toy")
    assert info.executable == str(res.executable) and info.admission == res.admission


def test_store_nothing_admitted_is_unavailable(harness: Harness) -> None:
    res = _resolve(harness)
    assert res.blocked is not None
    assert res.blocked.failure_class == "provider-unavailable"
    assert res.blocked.evidence_file == "provider-unavailable.txt"
    assert res.executable is None


def test_store_tampered_byte_is_digest_mismatch(harness: Harness, admitted: Path) -> None:
    stored = _resolve(harness).executable
    assert stored is not None
    stored.chmod(0o755)
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0x20
    stored.write_bytes(bytes(data))
    res = _resolve(harness)
    assert res.blocked is not None
    assert res.blocked.failure_class == "provider-digest-mismatch"
    assert res.blocked.evidence_file == "provider-digest-mismatch.txt"
    expected = sha256_file(admitted)
    observed = sha256_file(stored)
    assert expected in res.blocked.reason and observed in res.blocked.reason
    assert res.admission is not None and res.admission["observed_sha256"] == observed


def test_store_revoked_is_unavailable_and_newest_active_wins(harness: Harness,
                                                             tmp_path: Path) -> None:
    old = toy_exe(tmp_path / "old", "old")
    new = toy_exe(tmp_path / "new", "new")
    admit(harness.entry(), home=harness.home, environ=harness.environ, binary=old)
    admit(harness.entry(), home=harness.home, environ=harness.environ, binary=new)
    assert _resolve(harness).sha256 == sha256_file(new)
    revoke(harness.home, "toy", sha256=sha256_file(new))
    assert _resolve(harness).sha256 == sha256_file(old)
    revoke(harness.home, "toy")
    res = _resolve(harness)
    assert res.blocked is not None and res.blocked.failure_class == "provider-unavailable"


def test_explicit_admitted_binary_is_real(harness: Harness, admitted: Path) -> None:
    res = _resolve(harness, **{VAR: str(admitted)})
    assert res.blocked is None and res.lane == "real"
    assert res.executable == admitted.resolve()
    assert res.admission is not None and res.admission["name"] == "toy"


@pytest.mark.parametrize("kind", ["missing", "directory", "not-executable"])
def test_explicit_unusable_binary_is_unavailable(harness: Harness, tmp_path: Path,
                                                 kind: str) -> None:
    target = tmp_path / "thing"
    if kind == "directory":
        target.mkdir()
    elif kind == "not-executable":
        target.write_text("#!/bin/sh\n")
    res = _resolve(harness, allow=True, **{VAR: str(target)})
    assert res.blocked is not None and res.blocked.failure_class == "provider-unavailable"
    assert VAR in res.blocked.reason


def test_explicit_unadmitted_binary(harness: Harness, admitted: Path, tmp_path: Path) -> None:
    other = toy_exe(tmp_path / "other", "unadmitted")
    digest = sha256_file(other)
    res = _resolve(harness, **{VAR: str(other)})
    assert res.blocked is not None
    assert res.blocked.failure_class == "provider-not-admitted"
    assert res.blocked.evidence_file == "provider-not-admitted.txt"
    assert digest in res.blocked.reason
    for res in (_resolve(harness, True, **{VAR: str(other)}),
                _resolve(harness, **{VAR: str(other), "CTO_HARNESS_ALLOW_UNADMITTED": "1"})):
        assert res.blocked is None and res.lane == "unadmitted" and res.admission is None
        assert res.sha256 == digest


def test_explicit_revoked_binary_is_not_admitted(harness: Harness, admitted: Path) -> None:
    revoke(harness.home, "toy")
    res = _resolve(harness, **{VAR: str(admitted)})
    assert res.blocked is not None and res.blocked.failure_class == "provider-not-admitted"
    assert "revoked" in res.blocked.reason


def test_explicit_binary_admitted_under_another_name(harness: Harness, admitted: Path) -> None:
    res = resolve_provider_executable("case", environ={**harness.environ, "X_BIN": str(admitted)},
                                      home=harness.home, bin_env_var="X_BIN",
                                      allow_unadmitted=False)
    assert res.blocked is not None and res.blocked.failure_class == "provider-not-admitted"
    assert "'toy'" in res.blocked.reason


def test_digest_mismatch_selfcheck(tmp_path: Path) -> None:
    result = digest_mismatch_selfcheck(tmp_path / "check")
    assert result["ok"] is True, result
    assert result["admitted_sha256"] != result["observed_sha256"]
