"""The report schema is a committed file: any change to the report model shows up as its diff."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cto_harness.evidence import report_schema

SNAPSHOT = Path(__file__).with_name("report.schema.json")
REGENERATE = "cto-harness schema report > tests/evidence/report.schema.json"


def test_schema_command_matches_the_committed_snapshot() -> None:
    out = subprocess.run([sys.executable, "-m", "cto_harness", "schema", "report"], capture_output=True,
                         text=True, check=True, timeout=120)
    current = json.loads(out.stdout)
    committed = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert current == committed, (
        "the report schema changed. If that is intended (a report model change), regenerate the "
        f"snapshot from the repository root and commit it with your change:\n    {REGENERATE}")


def test_snapshot_is_byte_exact_command_output() -> None:
    out = subprocess.run([sys.executable, "-m", "cto_harness", "schema", "report"], capture_output=True,
                         check=True, timeout=120)
    assert SNAPSHOT.read_bytes() == out.stdout, f"regenerate with:\n    {REGENERATE}"


def test_schema_names_the_synthetic_flag_of_the_admission() -> None:
    admission = report_schema()["$defs"]["ProviderInfo"]["properties"]["admission"]["anyOf"][0]
    assert admission["properties"]["synthetic"]["type"] == "boolean"
