"""Admission: hashing, self-identification, the read-only store, provenance, revoke, verify."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from cto_harness.supply_chain import (
    AdmitError,
    StoreError,
    admit,
    build,
    discover,
    list_admissions,
    load_admission,
    revoke,
    sha256_file,
    verify,
)

from .conftest import Harness, toy_exe, write_exe


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_admit_latest_build_into_read_only_store(harness: Harness) -> None:
    discover("toy", home=harness.home, environ=harness.environ, entry=harness.entry())
    built = build(harness.entry(), home=harness.home, environ=harness.environ)
    assert built.artifact is not None
    record, created = admit(harness.entry(), home=harness.home, environ=harness.environ)
    assert created and record.built_here
    digest = built.artifact.sha256
    folder = harness.home / "admitted" / "sha256" / digest
    stored = folder / "toy"
    assert record.sha256 == digest == sha256_file(stored)
    assert record.path == str(stored)
    assert (_mode(stored), _mode(folder)) == (0o555, 0o555)
    assert _mode(folder / "admission.json") == 0o444
    assert record.source_url == harness.repo.url and record.pin == harness.repo.pin
    assert record.build is not None and record.build.modified_tracked_files == ["src/generated.txt"]
    assert record.build_command == ["python3", "build.py"]
    assert record.toolchain is not None and record.toolchain[0].name == "python3"
    assert record.identify.ok and "toy provider" in record.identify.output
    on_disk = json.loads((folder / "admission.json").read_text())
    assert on_disk["sha256"] == digest and on_disk["revoked"] is False
    assert on_disk["admitted_at"].endswith("Z")

    statement = json.loads((folder / "provenance.intoto.json").read_text())
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": "toy", "digest": {"sha256": digest}}]
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    definition = statement["predicate"]["buildDefinition"]
    assert definition["externalParameters"] == {
        "source": harness.repo.url, "pin": harness.repo.pin, "command": ["python3", "build.py"]}
    assert definition["resolvedDependencies"] == [
        {"uri": f"git+{harness.repo.url}@{harness.repo.pin}",
         "digest": {"gitCommit": harness.repo.pin}}]
    run = statement["predicate"]["runDetails"]
    assert run["builder"] == {"id": "cto-harness"}
    assert set(run["metadata"]) >= {"startedOn", "finishedOn"}

    again, created_again = admit(harness.entry(), home=harness.home, environ=harness.environ)
    assert not created_again and again.sha256 == digest


def test_admit_supplied_binary_and_expect_sha256(harness: Harness, tmp_path: Path) -> None:
    exe = toy_exe(tmp_path / "supplied" / "toy-bin")
    digest = sha256_file(exe)
    with pytest.raises(AdmitError, match=f"expected {'0' * 64}, observed {digest}"):
        admit(harness.entry(), home=harness.home, environ=harness.environ, binary=exe,
              expect_sha256="0" * 64)
    record, _ = admit(harness.entry(), home=harness.home, environ=harness.environ, binary=exe,
                      expect_sha256=digest.upper())
    assert not record.built_here and record.build is None and record.expect_sha256 == digest
    assert record.file_name == "toy"
    statement = json.loads(Path(record.provenance).read_text())
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["command"] is None


def test_admit_refusals(harness: Harness, tmp_path: Path) -> None:
    with pytest.raises(AdmitError, match="no successful build"):
        admit(harness.entry(), home=harness.home, environ=harness.environ)
    (tmp_path / "adir").mkdir()
    with pytest.raises(AdmitError, match="is a directory"):
        admit(harness.entry(), home=harness.home, environ=harness.environ,
              binary=tmp_path / "adir")
    with pytest.raises(AdmitError, match="does not exist"):
        admit(harness.entry(), home=harness.home, environ=harness.environ,
              binary=tmp_path / "nope")
    impostor = write_exe(tmp_path / "impostor", "#!/bin/sh\necho 'something else'\n")
    with pytest.raises(AdmitError, match="failed self-identification"):
        admit(harness.entry(), home=harness.home, environ=harness.environ, binary=impostor)
    assert list_admissions(harness.home) == []
    assert [p.name for p in (harness.home / "admitted" / "sha256").iterdir()] == []


def test_identification_is_bounded(harness: Harness, tmp_path: Path) -> None:
    harness.add_entry("sleepy", ident_timeout=0.5)
    sleeper = write_exe(tmp_path / "sleeper", "#!/bin/sh\nsleep 30\n")
    with pytest.raises(AdmitError, match="timed out"):
        admit(harness.entry("sleepy"), home=harness.home, environ=harness.environ,
              binary=sleeper)


def test_discovery_clone_binaries_are_never_admitted(harness: Harness) -> None:
    record = discover("toy", home=harness.home, environ=harness.environ, entry=harness.entry())
    inside = Path(record.checkout) / "build.py"
    inside.chmod(0o755)
    with pytest.raises(AdmitError, match="discovery clone"):
        admit(harness.entry(), home=harness.home, environ=harness.environ, binary=inside)


def test_revoke_keeps_bytes_and_blocks_readmission(harness: Harness, tmp_path: Path) -> None:
    exe = toy_exe(tmp_path / "toy")
    record, _ = admit(harness.entry(), home=harness.home, environ=harness.environ, binary=exe)
    (revoked,) = revoke(harness.home, "toy", reason="test")
    assert revoked.revoked and revoked.revoked_reason == "test" and revoked.revoked_at
    assert Path(record.path).is_file()
    folder = Path(record.path).parent
    assert _mode(folder) == 0o555
    assert json.loads((folder / "admission.json").read_text())["revoked"] is True
    with pytest.raises(AdmitError, match="revoked"):
        admit(harness.entry(), home=harness.home, environ=harness.environ, binary=exe)
    with pytest.raises(StoreError, match="no active admission"):
        revoke(harness.home, "toy")
    with pytest.raises(StoreError, match="already revoked"):
        revoke(harness.home, "toy", sha256=record.sha256)


def test_verify_detects_tampering(harness: Harness, tmp_path: Path) -> None:
    first, _ = admit(harness.entry(), home=harness.home, environ=harness.environ,
                     binary=toy_exe(tmp_path / "a", "a"))
    admit(harness.entry(), home=harness.home, environ=harness.environ,
          binary=toy_exe(tmp_path / "b", "b"))
    report = verify(harness.home, "toy")
    assert report.ok and len(report.entries) == 2
    stored = Path(first.path)
    stored.chmod(0o755)
    data = bytearray(stored.read_bytes())
    data[5] ^= 0x01
    stored.write_bytes(bytes(data))
    report = verify(harness.home, "toy")
    assert not report.ok
    bad = [e for e in report.entries if not e.ok]
    assert [e.sha256 for e in bad] == [first.sha256]
    assert "digest mismatch" in (bad[0].error or "")
    assert (harness.home / "admitted" / "verify" / "toy.json").is_file()


def _toy_double(path: Path) -> Path:
    """A toy that identifies itself and, like the lab's synthetic ``ca``, says it is synthetic."""
    return write_exe(path, f"#!{sys.executable}\nprint('Usage: toy [--help]')\nprint('toy provider (synthetic)')\n")


def _on_disk(record_path: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((Path(record_path).parent / "admission.json").read_text())
    return data


def test_admission_records_whether_the_provider_is_synthetic(harness: Harness, tmp_path: Path) -> None:
    real, _ = admit(harness.entry(), home=harness.home, environ=harness.environ, binary=toy_exe(tmp_path / "toy"))
    assert real.synthetic is False and _on_disk(real.path)["synthetic"] is False
    double = _toy_double(tmp_path / "double" / "toy")
    record, created = admit(harness.entry(), home=harness.home, environ=harness.environ, binary=double,
                            synthetic=True)
    assert created and record.synthetic is True and _on_disk(record.path)["synthetic"] is True
    with pytest.raises(AdmitError, match="already admitted as a synthetic test double"):
        admit(harness.entry(), home=harness.home, environ=harness.environ, binary=double)


def test_admit_refuses_a_synthetic_double_as_a_real_provider(harness: Harness, tmp_path: Path) -> None:
    double = _toy_double(tmp_path / "double" / "toy")
    with pytest.raises(AdmitError, match=r"identifies itself as a synthetic test double") as refused:
        admit(harness.entry(), home=harness.home, environ=harness.environ, binary=double)
    assert "\n" not in str(refused.value)
    assert list_admissions(harness.home) == []
    assert [p.name for p in (harness.home / "admitted" / "sha256").iterdir()] == []


def test_an_admission_json_without_the_synthetic_field_still_loads(harness: Harness, tmp_path: Path) -> None:
    record, _ = admit(harness.entry(), home=harness.home, environ=harness.environ, binary=toy_exe(tmp_path / "toy"))
    folder = Path(record.path).parent
    path = folder / "admission.json"
    old = _on_disk(record.path)
    del old["synthetic"]
    folder.chmod(0o755)
    path.chmod(0o644)
    path.write_text(json.dumps(old))
    loaded = load_admission(harness.home, record.sha256)
    assert loaded is not None and loaded.synthetic is False
    # A synthetic double admitted before the field existed says so in its identification output.
    identify = old["identify"]
    assert isinstance(identify, dict)
    identify["output"] = "toy provider (synthetic)\n"
    path.write_text(json.dumps(old))
    loaded = load_admission(harness.home, record.sha256)
    assert loaded is not None and loaded.synthetic is True
