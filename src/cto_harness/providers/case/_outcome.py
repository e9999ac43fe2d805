"""Reading what a Case run said happened: its completion signals, never its exit status alone.

Real ``ca`` exits 0 when a pipeline runs to its end, succeeded or failed. Its outcome is
in three places: the last outcome line on stdout (``[unattended] Pipeline completed successfully.``
or ``[unattended] Pipeline failed at <agent> phase.``), the ``pipeline finished`` JSON
log line on stderr, and ``.case/run-log.jsonl``. Setup errors exit 1 with a
``Fatal: ...`` or ``Error: ...`` line. Agents' AGENT_RESULT blocks are parsed inside
Case; what reaches stderr is the parse error (``AGENT_RESULT start delimiter not
found``) or ``failureClass: agent-protocol-error``.

ANSI colour codes are ignored. When the signals disagree, a failure wins: a run counts as completed only if no signal
says it failed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cto_harness.providers._protocol import FailureClass, Outcome

_COMPLETED = re.compile(r"^\[unattended\] Pipeline completed successfully\.?\s*$")
_FAILED = re.compile(r"^\[unattended\] Pipeline failed at (?P<agent>\S+) phase\.?\s*$")
_FATAL = re.compile(r"^(Fatal|Error): ")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MAX_ITEMS = 20
_MAX_CHARS = 500


@dataclass
class CaseSignals:
    """Every completion signal found in one Case run's output and state."""

    final_line: str | None = None
    stdout_outcome: str | None = None
    stdout_failed_agent: str | None = None
    finished: dict[str, Any] | None = None
    """The last ``pipeline finished`` stderr log object."""
    run_log: dict[str, Any] | None = None
    """The last ``.case/run-log.jsonl`` entry carrying an ``outcome``."""
    errors: list[str] = field(default_factory=list)
    failure_classes: list[str] = field(default_factory=list)
    fatal: str | None = None
    """The last ``Fatal:``/``Error:`` line on stderr."""
    last_stderr_line: str | None = None
    pipeline_end: dict[str, Any] | None = None
    """The last ``pipeline_end`` event of Case's own event log (``.case/<slug>/events/run-<id>.jsonl``)."""
    phases: list[str] = field(default_factory=list)
    """Agents whose phase started, in event-log order."""
    agents: list[dict[str, Any]] = field(default_factory=list)
    """Every ``spawning agent`` stderr log line: agent, provider, model."""

    @property
    def outcome(self) -> str | None:
        """``failed`` if any signal says so, else ``completed`` if any does, else None."""
        said = [self.stdout_outcome,
                (self.finished or {}).get("outcome"),
                (self.run_log or {}).get("outcome"),
                (self.pipeline_end or {}).get("outcome")]
        if "failed" in said:
            return "failed"
        return "completed" if "completed" in said else None

    @property
    def failed_agent(self) -> str | None:
        for source in (self.pipeline_end or {}, self.finished or {}, self.run_log or {}):
            agent = source.get("failedAgent")
            if isinstance(agent, str) and agent:
                return agent
        return self.stdout_failed_agent

    @property
    def protocol_error(self) -> bool:
        """Case logged an AGENT_RESULT parse error or classified a failure as one."""
        return ("agent-protocol-error" in self.failure_classes
                or any("AGENT_RESULT" in error for error in self.errors))


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_CHARS else text[:_MAX_CHARS] + "..."


def _lines(data: bytes) -> list[str]:
    text = _ANSI.sub("", data.decode("utf-8", "replace"))
    return [line.strip() for line in text.splitlines() if line.strip()]


def _json_objects(lines: list[str]) -> list[dict[str, Any]]:
    objects = []
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            parsed = json.loads(line)
        except (json.JSONDecodeError, RecursionError):  # RecursionError: a line nested too deep
            continue
        if isinstance(parsed, dict):
            objects.append(parsed)
    return objects


def _add_unique(items: list[str], value: object) -> None:
    if isinstance(value, str) and value and len(items) < _MAX_ITEMS:
        clipped = _clip(value)
        if clipped not in items:
            items.append(clipped)


def read_signals(stdout: bytes, stderr: bytes, run_log: bytes, event_log: bytes = b"") -> CaseSignals:
    """Collect the completion signals from stdout, stderr, the run log and Case's event log."""
    signals = CaseSignals()
    for obj in _json_objects(_lines(event_log)):
        if obj.get("event") == "pipeline_end":
            signals.pipeline_end = obj
        elif obj.get("event") == "phase_start" and isinstance(obj.get("agent"), str):
            signals.phases.append(obj["agent"])
    out = _lines(stdout)
    if out:
        signals.final_line = _clip(out[-1])
    for line in reversed(out):  # the last outcome line, even if an informational line follows it
        if _COMPLETED.match(line):
            signals.stdout_outcome = "completed"
            break
        if match := _FAILED.match(line):
            signals.stdout_outcome, signals.stdout_failed_agent = "failed", match["agent"]
            break
    err = _lines(stderr)
    if err:
        signals.last_stderr_line = _clip(err[-1])
    for line in err:
        if _FATAL.match(line):
            signals.fatal = _clip(line)
    for obj in _json_objects(err):
        if obj.get("msg") == "pipeline finished":
            signals.finished = obj
        elif obj.get("msg") == "spawning agent" and len(signals.agents) < 100:
            signals.agents.append({k: obj.get(k) for k in ("agent", "provider", "model")})
        _add_unique(signals.errors, obj.get("error"))
        _add_unique(signals.failure_classes, obj.get("failureClass"))
    for obj in _json_objects(_lines(run_log)):
        if "outcome" in obj:
            signals.run_log = obj
        _add_unique(signals.failure_classes, obj.get("failureClass"))
    return signals


def classify(signals: CaseSignals, *, exit_code: int | None, timed_out: bool
             ) -> tuple[FailureClass | None, tuple[str, ...]]:
    """Map the signals to a failure class (None: let the harness's diff and tests decide)."""
    if timed_out:
        said = f"; Case's last outcome signal: {signals.outcome}" if signals.outcome else \
            "; Case wrote no final outcome line"
        return "provider-timeout", (f"Case was killed by the harness timeout{said}",)
    if exit_code != 0:
        line = signals.fatal or signals.last_stderr_line or "no Fatal/Error line on stderr"
        return "provider-crashed", (f"Case exited {exit_code}: {line}",)
    outcome = signals.outcome
    if outcome == "completed":
        return None, ()
    if outcome == "failed":
        where = f" (failed agent: {signals.failed_agent})" if signals.failed_agent else ""
        last_error = f": {signals.errors[-1]}" if signals.errors else ""
        if signals.protocol_error:
            return "agent-protocol-error", (
                f"Case pipeline failed{where} on an agent protocol error{last_error}",)
        return "agent-reported-failure", (f"Case pipeline failed{where}{last_error}",)
    return "agent-protocol-error", (
        "Case exited 0 without a final outcome line, `pipeline finished` log or run-log outcome",)


def agent_result(signals: CaseSignals, *, event_log: str | None, run_log: str | None) -> dict[str, Any]:
    """The report's ``agent_result`` for Case: outcome, failed agent, classes, errors, logs."""
    finished = signals.finished or {}
    return {
        "provider": "case",
        "outcome": signals.outcome,
        "failedAgent": signals.failed_agent,
        "failureClasses": signals.failure_classes,
        "errors": signals.errors,
        "fatal": signals.fatal,
        "finalLine": signals.final_line,
        "signals": {
            "stdout": signals.stdout_outcome,
            "pipelineFinished": finished.get("outcome"),
            "runLog": (signals.run_log or {}).get("outcome"),
            "eventLog": (signals.pipeline_end or {}).get("outcome"),
        },
        "agents": signals.agents,
        "phases": signals.phases,
        "caseEventLog": finished.get("eventLog") if isinstance(finished.get("eventLog"), str) else None,
        "eventLog": event_log,
        "runLog": run_log,
    }


def evidence_path(case_path: str | None, *, workspace: Path, state_rel: str, evidence_rel: str,
                  backend_dir: Path) -> str | None:
    """Where a file Case named inside its state dir was kept (``backend/...``), if it was."""
    if not case_path:
        return None
    path = Path(case_path)
    if not path.is_absolute():
        path = workspace / path
    try:
        inside = path.resolve().relative_to((workspace / state_rel).resolve())
    except (ValueError, OSError):
        return None
    kept = backend_dir / evidence_rel / inside
    return f"backend/{evidence_rel}/{inside.as_posix()}" if kept.is_file() else None


def interpret_case(signals: CaseSignals, *, exit_code: int | None, timed_out: bool,
                   event_log: str | None, run_log: str | None) -> Outcome:
    """The Case ``Outcome``: class, reasons and agent result from the signals."""
    failure_class, reasons = classify(signals, exit_code=exit_code, timed_out=timed_out)
    return Outcome(failure_class=failure_class, reasons=reasons,
                   agent_result=agent_result(signals, event_log=event_log, run_log=run_log))


def model_mismatches(signals: CaseSignals, provider: str, model: str) -> list[str]:
    """``agent provider/model`` of every spawned agent that ran another model than the admitted one."""
    return [f"{a.get('agent')} {a.get('provider')}/{a.get('model')}" for a in signals.agents
            if (a.get("provider"), a.get("model")) != (provider, model)]
