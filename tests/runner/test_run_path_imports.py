"""A fake-lane run imports only what it uses: checked in a fresh interpreter through sys.modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env

NOT_ON_THE_FAKE_LANE = ("asyncio", "ssl", "cto_harness.egress._proxy")
"""The egress proxy (asyncio, ssl) serves runs with a model endpoint only."""

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
    proc = subprocess.run([sys.executable, "-c", "import sys; from cto_harness.egress import EgressProxy; "
                           "print(EgressProxy.__module__, 'asyncio' in sys.modules)"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.stdout.split() == ["cto_harness.egress._proxy", "True"], proc.stderr
