"""``model-calls.jsonl``: one line per exchange that crossed the proxy.

Lines carry no headers (so no credentials); bodies only with
``CTO_HARNESS_KEEP_MODEL_BODIES=1``, and then with every known secret and anything that
looks like an API key replaced by ``[redacted]``.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

LEDGER_NAME = "model-calls.jsonl"
KEEP_BODIES_ENV = "CTO_HARNESS_KEEP_MODEL_BODIES"
MAX_KEPT_BODY = 1024 * 1024
"""Bytes of each kept body (the rest is cut and marked)."""
REDACTED = "[redacted]"
_KEYLIKE = re.compile(r"(sk-[A-Za-z0-9_\-]{12,}|Bearer\s+[A-Za-z0-9._\-]{12,}|AIza[0-9A-Za-z_\-]{20,})")


class Ledger:
    """Append-only JSON lines, written by the proxy thread, flushed per line."""

    def __init__(self, path: Path, *, keep_bodies: bool = False, secrets: Sequence[str] = ()) -> None:
        self.path = path
        self.keep_bodies = keep_bodies
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self._lock = threading.Lock()
        self._seq = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        self._fh: BinaryIO | None = os.fdopen(fd, "ab")

    def add_secrets(self, secrets: Sequence[str]) -> None:
        with self._lock:
            self._secrets = sorted({*self._secrets, *(s for s in secrets if len(s) >= 4)}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return _KEYLIKE.sub(REDACTED, text)

    def body(self, data: bytes | None) -> str | None:
        """A kept body (redacted, capped) or None when bodies are not kept."""
        if not self.keep_bodies or data is None:
            return None
        text = data[:MAX_KEPT_BODY].decode("utf-8", "replace")
        if len(data) > MAX_KEPT_BODY:
            text += f"...[cut: {len(data) - MAX_KEPT_BODY} more bytes]"
        return self.redact(text)

    def append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            if self._fh is None:
                return
            self._seq += 1
            line = json.dumps({"seq": self._seq, **entry}, ensure_ascii=False, default=str)
            self._fh.write(self.redact(line).encode("utf-8") + b"\n")
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                self._fh = None
