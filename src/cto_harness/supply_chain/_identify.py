"""Self-identification: the executable must say what it is before it is admitted.

A digest proves the bytes did not change; it does not prove the bytes are the provider.
Running ``<exe> --help`` (bounded, in a scratch dir, with a minimal environment) and
matching the catalog's patterns catches a wrong file admitted under a provider's name.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cto_harness.proc import read_capped, run_to_log
from cto_harness.supply_chain._catalog import Identify
from cto_harness.supply_chain._records import IdentifyResult

OUTPUT_CAP = 8192


def identify(executable: Path, spec: Identify, *, path_value: str,
             environ: Mapping[str, str] | None = None) -> IdentifyResult:
    """Run the identification argv and check every pattern against its output."""
    argv = [str(executable), *spec.args]
    with tempfile.TemporaryDirectory(prefix="cto-harness-identify-") as scratch:
        env = {
            "PATH": path_value,
            "HOME": scratch,
            "TMPDIR": scratch,
            "LANG": (environ or {}).get("LANG", "C.UTF-8"),
            "TERM": "dumb",
            "NO_COLOR": "1",
        }
        out = Path(scratch) / "identify.out"
        try:
            result = run_to_log(argv, cwd=Path(scratch), env=env, timeout_s=spec.timeout_s,
                                 log=out)
        except OSError as exc:
            return IdentifyResult(argv=argv, exit_code=None, timed_out=False, duration_s=0.0,
                                  output=f"cannot execute: {exc}", output_truncated=False,
                                  patterns=list(spec.patterns),
                                  matched=[False] * len(spec.patterns), ok=False)
        text, truncated = read_capped(out, OUTPUT_CAP)
    matched = [re.search(p, text) is not None for p in spec.patterns]
    exit_ok = spec.expect_exit_code is None or result.exit_code == spec.expect_exit_code
    return IdentifyResult(
        argv=argv,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        duration_s=result.duration_s,
        output=text,
        output_truncated=truncated,
        patterns=list(spec.patterns),
        matched=matched,
        ok=not result.timed_out and exit_ok and all(matched),
    )
