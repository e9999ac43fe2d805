"""``events.jsonl``: an append-only lifecycle log whose lines form a SHA-256 hash chain.

Each line is a JSON object carrying ``prev_sha256``, the SHA-256 of the previous line's
bytes (without its newline); the first line's is 64 zeros. Altering, removing or
inserting any line breaks the chain, and the report records the head.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cto_harness.evidence._names import json_safe
from cto_harness.evidence._redact import Redactor

GENESIS = "0" * 64


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class EventLog:
    """Appends hash-chained events, each flushed as it is written; fsynced by ``sync`` and ``close``.

    A killed harness loses no event (each line is in the kernel once ``emit`` returns); only
    a power cut can lose the tail written since the last ``sync``. The harness syncs before
    it writes ``report.json``, so a report never names a head the disk may not hold.
    """

    def __init__(self, path: Path, redactor: Redactor | None = None) -> None:
        self.path = path
        self.redactor = redactor or Redactor()
        """Secrets are removed from each event before it is written (and hashed)."""
        existing = read_events(path) if path.exists() else None
        self.count = existing.count if existing else 0
        self.head = existing.head if existing else GENESIS
        self._handle = open(path, "ab")  # noqa: SIM115 - held open for the run's lifetime

    def emit(self, event: str, **data: Any) -> None:
        record = {
            "seq": self.count,
            "ts": utc_now(),
            "event": event,
            "data": json_safe(self.redactor.value(data)),
            "prev_sha256": self.head,
        }
        line = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
        self._handle.write(line + b"\n")
        self._handle.flush()
        self.head = hashlib.sha256(line).hexdigest()
        self.count += 1

    def sync(self) -> None:
        """Make every event written so far durable (fsync)."""
        if not self._handle.closed:
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        if not self._handle.closed:
            self.sync()
            self._handle.close()


@dataclass(frozen=True)
class ChainReading:
    """What a read of events.jsonl found; ``error`` names the first broken line."""

    events: list[dict[str, Any]]
    count: int
    head: str
    error: str | None
    torn_tail: bool
    """The last line had no newline and did not parse: a write cut by a crash."""


def read_events(path: Path) -> ChainReading:
    """Read and check the chain. A torn final line (crash mid-write) is reported, not fatal."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    events: list[dict[str, Any]] = []
    head = GENESIS
    error: str | None = None
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            error = f"events.jsonl line {number}: not valid JSON"
            break
        if not isinstance(record, dict) or record.get("prev_sha256") != head:
            error = f"events.jsonl line {number}: hash chain broken (prev_sha256 does not match)"
            break
        if record.get("seq") != number - 1:
            error = f"events.jsonl line {number}: sequence number {record.get('seq')!r} out of order"
            break
        events.append(record)
        head = hashlib.sha256(line).hexdigest()
    torn = bool(tail) and error is None
    return ChainReading(events=events, count=len(events), head=head, error=error, torn_tail=torn)
