"""Every run is signed (DSSE over an in-toto Statement); verify checks the signature."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

from tests.conftest import cli_env, run_cli
from tests.evidence.forge import forge_pass


def _run(tmp_path: Path, runs_dir: Path, *extra: str) -> Path:
    result = run_cli("run", "--runs-dir", str(runs_dir), *extra, env=cli_env(tmp_path))
    assert result.run_dir is not None, result.stderr
    return result.run_dir


def _verify(tmp_path: Path, run_dir: Path, *extra: str) -> tuple[int, str]:
    result = run_cli("verify", str(run_dir), *extra, env=cli_env(tmp_path))
    return result.returncode, result.stdout + result.stderr


def test_run_is_signed_and_verifies(tmp_path: Path, runs_dir: Path) -> None:
    run_dir = _run(tmp_path, runs_dir)
    envelope = json.loads((run_dir / "attestation.dsse.json").read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert {s["name"] for s in statement["subject"]} == {"report.json", "patch.diff"}
    report = json.loads((run_dir / "report.json").read_text())
    predicate = statement["predicate"]
    assert predicate["run_id"] == report["run_id"] and predicate["verdict"] == "pass"
    assert predicate["fixture_digest"] == report["fixture"]["digest"]
    assert predicate["provider_digest"] == report["provider"]["sha256"]
    code, out = _verify(tmp_path, run_dir)
    assert code == 0, out
    assert "signature" in out

    keys = tmp_path / "home" / "keys"
    private = keys / "evidence-ed25519.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    shown = run_cli("keys", "show", env=cli_env(tmp_path))
    assert shown.returncode == 0 and "BEGIN PUBLIC KEY" in shown.stdout
    pub = tmp_path / "pub.pem"
    pub.write_text(shown.stdout)
    code, out = _verify(tmp_path / "elsewhere", run_dir, "--pubkey", str(pub))
    assert code == 0, out


def test_forged_verdict_with_rehashed_chain_fails_verify(tmp_path: Path, runs_dir: Path) -> None:
    run_dir = _run(tmp_path, runs_dir, "--scenario", "noop")
    assert json.loads((run_dir / "report.json").read_text())["verdict"] == "fail"
    forge_pass(run_dir)
    code, out = _verify(tmp_path, run_dir)
    assert code == 1, out
    assert "attestation" in out


def test_another_key_or_no_attestation_fails(tmp_path: Path, runs_dir: Path) -> None:
    run_dir = _run(tmp_path, runs_dir, "--scenario", "noop")
    other = run_cli("keys", "show", env=cli_env(tmp_path / "other"))
    pub = tmp_path / "other.pem"
    pub.write_text(other.stdout)
    code, out = _verify(tmp_path, run_dir, "--pubkey", str(pub))
    assert code == 1 and "signature does not verify" in out, out
    code, out = _verify(tmp_path / "nokey", run_dir)
    assert code == 1 and "no public key" in out, out
    (run_dir / "attestation.dsse.json").unlink()
    code, out = _verify(tmp_path, run_dir)
    assert code == 1 and "not signed" in out, out
