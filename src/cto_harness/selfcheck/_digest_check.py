"""A fast, network-free proof that a tampered admitted binary is blocked.

Used by ``health`` (check ``digest_mismatch_blocks``): admit a tiny script into a
scratch home, confirm it resolves in the real lane, flip one byte of the stored copy,
and confirm resolution now blocks with ``provider-digest-mismatch`` and that an
unadmitted explicit binary is blocked with ``provider-not-admitted``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from cto_harness.supply_chain import CatalogEntry, Identify, admit, resolve_provider_executable

_SCRIPT = f"#!{sys.executable}\nprint('selfcheck provider')\n"


def digest_mismatch_selfcheck(workdir: Path) -> dict[str, Any]:
    """Run the check inside ``workdir`` (created if needed); return ``{"ok": bool, ...}``."""
    home = workdir / "home"
    src = workdir / "selfcheck-provider"
    workdir.mkdir(parents=True, exist_ok=True)
    src.write_text(_SCRIPT, encoding="utf-8")
    src.chmod(0o755)
    entry = CatalogEntry(
        name="selfcheck", source_url="file:///dev/null", pin="0" * 40,
        build_command=["true"], artifact="selfcheck-provider",
        identify=Identify(args=[], patterns=["selfcheck provider"]),
    )
    environ = {"PATH": os.environ.get("PATH", os.defpath)}
    record, _ = admit(entry, home=home, environ=environ, binary=src)
    var = "CTO_HARNESS_SELFCHECK_BIN"
    before = resolve_provider_executable("selfcheck", environ=environ, home=home,
                                         bin_env_var=var, allow_unadmitted=False)
    stored = Path(record.path)
    stored.chmod(0o755)
    data = bytearray(stored.read_bytes())
    data[-2] ^= 0x01
    stored.write_bytes(bytes(data))
    after = resolve_provider_executable("selfcheck", environ=environ, home=home,
                                        bin_env_var=var, allow_unadmitted=False)
    explicit = resolve_provider_executable("selfcheck", environ={**environ, var: str(stored)},
                                           home=home, bin_env_var=var, allow_unadmitted=False)
    checks = {
        "admitted_resolves_real": before.blocked is None and before.lane == "real",
        "tampered_store_blocks": after.blocked is not None
        and after.blocked.failure_class == "provider-digest-mismatch",
        "tampered_explicit_not_admitted": explicit.blocked is not None
        and explicit.blocked.failure_class == "provider-not-admitted",
    }
    return {
        "ok": all(checks.values()),
        **checks,
        "admitted_sha256": record.sha256,
        "observed_sha256": after.sha256,
        "reason": after.blocked.reason if after.blocked else None,
    }
