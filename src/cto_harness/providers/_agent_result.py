"""The ``<<<AGENT_RESULT {json} AGENT_RESULT>>>`` completion block shared by agents."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cto_harness.evidence import read_agent_file

_BLOCK = re.compile(rb"<<<AGENT_RESULT\s*(.*?)\s*AGENT_RESULT>>>", re.DOTALL)
SUCCESS_STATUSES = frozenset({"completed", "success", "succeeded", "done"})


@dataclass(frozen=True)
class AgentResultParse:
    result: dict[str, Any] | None
    error: str | None


def parse_last_agent_result(data: bytes) -> AgentResultParse:
    """Parse the last block; a missing block or invalid JSON is a protocol error."""
    blocks = _BLOCK.findall(data)
    if not blocks:
        return AgentResultParse(None, "AGENT_RESULT start delimiter not found")
    try:
        parsed = json.loads(blocks[-1].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return AgentResultParse(None, f"AGENT_RESULT block is not valid JSON: {exc}")
    except RecursionError:
        return AgentResultParse(None, "AGENT_RESULT block is nested too deep to read")
    if not isinstance(parsed, dict):
        return AgentResultParse(None, "AGENT_RESULT block is not a JSON object")
    return AgentResultParse(parsed, None)


def read_capped(path: Path, limit: int = 16 * 1024 * 1024) -> bytes:
    """Read at most ``limit`` bytes from the end of a (capped) output file; never through a symlink."""
    return read_agent_file(path, limit=limit, tail=True) or b""
