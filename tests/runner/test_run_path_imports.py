"""A fake-lane run imports only what it uses: checked in a fresh interpreter through sys.modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env

NOT_ON_THE_FAKE_LANE = ("asyncio", "ssl", "cto_harness.egress._proxy", "cto_harness.egress._usage")
"""The egress proxy (asyncio, ssl) and its usage parsers serve runs with a model endpoint only."""
SIGNING = "cryptography"
"""Imported for the signature at a run's end (in the background while its tests run), not at start."""

PROGRAM = """
import json, sys
from pathlib import Path
from cto_harness.runner import RunRequest, run_stage2
result = run_stage2(RunRequest(runs_dir=Path(sys.argv[1])))
print(json.dumps({"verdict": result.report.verdict,
                  "imported": sorted(m for m in sys.argv[2:] if m in sys.modules)}))
"""


def test_a_fake_run_never_imports_the_egress_proxy(runs_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", PROGRAM, str(runs_dir), *NOT_ON_THE_FAKE_LANE],
                          env=cli_env(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout.splitlines()[-1])
    assert outcome == {"verdict": "pass", "imported": []}


def test_the_proxy_is_still_one_attribute_away() -> None:
    proc = subprocess.run([sys.executable, "-c", "import sys; from cto_harness.egress import EgressProxy, parse_usage; "
                           "print(EgressProxy.__module__, parse_usage.__module__, 'asyncio' in sys.modules)"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.stdout.split() == ["cto_harness.egress._proxy", "cto_harness.egress._usage", "True"], proc.stderr


def test_the_run_command_imports_no_signing_code_up_front() -> None:
    program = ("import sys, cto_harness.cli.run, cto_harness.runner, cto_harness.providers.fake; "
               f"print({SIGNING!r} in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False)
    assert proc.stdout.strip() == "False", proc.stderr
