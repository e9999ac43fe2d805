"""Forge a run's verdict the way an attacker with write access to the run dir would."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def forge_pass(run_dir: Path) -> None:
    """Rewrite report.json to ``pass`` and re-hash the ``report_written`` event to match.

    The chain stays internally consistent: the last line's ``prev_sha256`` is untouched
    and nothing follows it, so only a key the attacker lacks can expose the edit.
    """
    report_path = run_dir / "report.json"
    report = json.loads(report_path.read_text())
    report["verdict"], report["failure_class"] = "pass", None
    report["reasons"] = ["provider completed, patch non-empty, fixture tests pass"]
    data = (json.dumps(report, indent=2) + "\n").encode()
    report_path.write_bytes(data)
    events_path = run_dir / "events.jsonl"
    lines = events_path.read_bytes().split(b"\n")[:-1]
    last = json.loads(lines[-1])
    assert last["event"] == "report_written"
    last["data"].update(report_sha256=hashlib.sha256(data).hexdigest(), verdict="pass", failure_class=None)
    lines[-1] = json.dumps(last, sort_keys=True, ensure_ascii=False).encode()
    events_path.write_bytes(b"\n".join(lines) + b"\n")
