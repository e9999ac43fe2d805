"""report/2: usage {measured, reported}, /1 reports migrated on load, disagreement flagged by `report show`."""

from __future__ import annotations

import json
from pathlib import Path

from egress_helpers import model_server
from test_runs import run

from cto_harness.core import Usage
from cto_harness.evidence import SCHEMA_VERSION, Report, UsageReport


def test_a_report_1_is_read_with_its_usage_as_reported(tmp_path: Path) -> None:
    with model_server() as server:
        current = run(tmp_path, server.openai_base_url).report
    old = json.loads(current.model_dump_json())
    old["schema_version"] = "cto-harness.report/1"
    old["usage"] = {"input_tokens": 10, "output_tokens": 2, "cost_usd": None, "calls": 1}
    del old["network"]
    migrated = Report.model_validate(old)
    assert migrated.schema_version == SCHEMA_VERSION == "cto-harness.report/2"
    assert migrated.usage == UsageReport(measured=None, reported=Usage(input_tokens=10, output_tokens=2, calls=1))
    assert migrated.network is None
    old["usage"] = None
    assert Report.model_validate(old).usage == UsageReport()


def test_disagreement_between_wire_and_word_is_named() -> None:
    usage = UsageReport(measured=Usage(calls=2, input_tokens=100, output_tokens=10),
                        reported=Usage(calls=2, input_tokens=40, output_tokens=10))
    assert usage.disagreements() == ["input_tokens: measured 100, reported 40"]
    assert UsageReport(measured=Usage(calls=2), reported=None).disagreements() == []
    assert usage.best == usage.measured and UsageReport(reported=usage.reported).best == usage.reported


def test_report_show_prints_both_usages(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cto_harness.cli.run import report_show

    with model_server() as server:
        result = run(tmp_path, server.openai_base_url)
    out = CliRunner().invoke(report_show, [str(result.run_dir)]).output
    assert "network:       isolated" in out or "network:       host" in out
    assert "usage:         measured 2 calls" in out and "reported -" in out
