"""The event hash chain and the report's artifact list catch every kind of tampering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cto_harness.evidence import EventLog, atomic_write_bytes, read_events
from cto_harness.evidence._events import GENESIS


def _log(path: Path, n: int) -> EventLog:
    log = EventLog(path)
    for i in range(n):
        log.emit("step", i=i)
    return log


def test_chain_links_each_line_to_the_previous(tmp_path: Path) -> None:
    log = _log(tmp_path / "events.jsonl", 3)
    log.close()
    chain = read_events(tmp_path / "events.jsonl")
    assert chain.error is None and chain.count == 3 and chain.head == log.head
    assert chain.events[0]["prev_sha256"] == GENESIS


@pytest.mark.parametrize("edit", ["alter", "drop", "swap"])
def test_any_edit_breaks_the_chain(tmp_path: Path, edit: str) -> None:
    path = tmp_path / "events.jsonl"
    _log(path, 4).close()
    lines = path.read_text().splitlines(keepends=True)
    if edit == "alter":
        record = json.loads(lines[1])
        record["data"]["i"] = 99
        lines[1] = json.dumps(record, sort_keys=True) + "\n"
    elif edit == "drop":
        del lines[1]
    else:
        lines[1], lines[2] = lines[2], lines[1]
    path.write_text("".join(lines))
    assert read_events(path).error is not None


def test_torn_tail_is_reported_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    _log(path, 2).close()
    with open(path, "ab") as handle:
        handle.write(b'{"seq": 2, "ev')
    chain = read_events(path)
    assert chain.error is None and chain.torn_tail and chain.count == 2


def test_reopened_log_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    _log(path, 2).close()
    log = EventLog(path)
    log.emit("more")
    log.close()
    chain = read_events(path)
    assert chain.error is None and chain.count == 3


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_verify_checks_and_hashes_the_same_report_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report.json swapped while verify runs cannot be checked in one version and hashed in the other.

    The attack: edit the agent's final tree, and serve a report listing the edited tree to
    the check but the genuine, signed report to the hash.
    """
    import os

    from cto_harness.evidence import verify_run
    from cto_harness.evidence._artifacts import collect_artifacts
    from cto_harness.runner import RunRequest, run_stage2

    home = tmp_path / "home"
    result = run_stage2(RunRequest(runs_dir=tmp_path / "runs", environ={**os.environ, "CTO_HARNESS_HOME": str(home)}))
    assert verify_run(result.run_dir, home=home).ok
    report_path = result.run_dir / "report.json"
    genuine = report_path.read_bytes()
    edited = next(p for p in sorted((result.run_dir / "workspace").rglob("*.py")) if ".git" not in p.parts)
    edited.write_text(edited.read_text() + "\n# edited after the run\n")
    forged = json.loads(genuine)
    forged["artifacts"] = {k: v.model_dump(mode="json") for k, v in collect_artifacts(result.run_dir).artifacts.items()}
    reads = {"n": 0}
    real_read_bytes = Path.read_bytes

    def swapping(self: Path) -> bytes:
        if self == report_path:
            reads["n"] += 1
            return json.dumps(forged).encode() if reads["n"] == 1 else genuine
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", swapping)
    checked = verify_run(result.run_dir, home=home)
    assert not checked.ok, "the edited tree passed verify"
    assert any("report.json: altered" in problem for problem in checked.problems)
