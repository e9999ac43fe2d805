"""A scratch lab for ``health`` and ``validate``: real runs in a throw-away harness home.

Everything lives under one work dir: a harness home whose admitted store holds the
synthetic ``ca`` executables (admitted through the normal admission route, as synthetic), a config
with a Case model allowlist, and a runs dir. Runs go through ``run_stage2``, the
production path, and each check compares the written report with an exact expectation.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from cto_harness.core import HarnessConfig
from cto_harness.evidence import Report, verify_run
from cto_harness.proc import HarnessInterrupted, ProcessResult, choose_sandbox, process_alive_with_tag
from cto_harness.providers import Gate, Invocation, ModelInfo, Outcome, ProviderInfo, RunContext, RunOptions
from cto_harness.providers.case import write_synthetic_ca
from cto_harness.runner import RunRequest, RunResult, run_stage2
from cto_harness.supply_chain import admit, catalog_entry, load_catalog

ADMITTED_MODEL = ("openai", "synthetic-model")
UNLISTED_MODEL = ("openai", "not-on-the-allowlist")
LAB_TIMEOUT_S = 2.0
"""Provider timeout of the lab's hanging runs: small, so health stays well under 30 s."""
HARNESS_BUG_PROVIDER = "cto_harness.selfcheck._lab:HarnessBugProvider"


@dataclass(frozen=True)
class Expectation:
    """What a report must say exactly; None fields are not checked."""

    verdict: str
    failure_class: str | None
    lane: str | None = None
    evidence_file: str | None = None
    """A file that must exist under backend/."""
    process_event: str | None = None
    """An event that must be in events.jsonl (e.g. ``case_process_started``)."""
    no_process_event: str | None = None
    """An event that must not be in events.jsonl (a gate failed: nothing started)."""
    reason_contains: str | None = None
    tests_ran: bool | None = None


CheckStatus = Literal["ok", "fail", "skip"]


@dataclass(frozen=True)
class CheckResult:
    """One health or validation check: ok only if every expected field was observed.

    A skipped check (nothing to check here, e.g. a client that is not installed) proved
    nothing: its ``ok`` is False and its ``status`` is ``skip``; it does not fail a suite.
    """

    ok: bool
    expected: Any
    observed: Any
    run_dir: str | None = None
    detail: str | None = None
    skipped: bool = False

    @property
    def status(self) -> CheckStatus:
        return "skip" if self.skipped else "ok" if self.ok else "fail"

    @classmethod
    def skip(cls, expected: Any, why: str) -> CheckResult:
        return cls(ok=False, expected=expected, observed={"skipped": True}, detail=f"skipped: {why}", skipped=True)

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if (v is not None or k == "run_dir") and k != "skipped"}
        return {"status": self.status, **data}


def event_names(run_dir: Path) -> list[str]:
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line).get("event", "") for line in path.read_text("utf-8").splitlines() if line.strip()]


def observe(result: RunResult, expect: Expectation) -> CheckResult:
    """Compare a run's report with ``expect``, field by field."""
    report, run_dir = result.report, result.run_dir
    events = event_names(run_dir)
    expected: dict[str, Any] = {"verdict": expect.verdict, "failure_class": expect.failure_class}
    observed: dict[str, Any] = {"verdict": report.verdict, "failure_class": report.failure_class}
    if expect.lane is not None:
        expected["lane"], observed["lane"] = expect.lane, report.lane
    if expect.evidence_file is not None:
        expected["evidence_file"] = expect.evidence_file
        observed["evidence_file"] = expect.evidence_file if (run_dir / "backend" / expect.evidence_file).is_file() \
            else None
    if expect.process_event is not None:
        expected[expect.process_event] = True
        observed[expect.process_event] = expect.process_event in events
    if expect.no_process_event is not None:
        expected[expect.no_process_event] = False
        observed[expect.no_process_event] = expect.no_process_event in events
    if expect.reason_contains is not None:
        expected["reason_contains"] = expect.reason_contains
        observed["reason_contains"] = expect.reason_contains if any(
            expect.reason_contains in r for r in report.reasons) else report.reasons
    if expect.tests_ran is not None:
        expected["tests_ran"], observed["tests_ran"] = expect.tests_ran, report.tests.ran
    expected["report_written"], observed["report_written"] = True, (run_dir / "report.json").is_file()
    expected["surviving_pids"], observed["surviving_pids"] = [], process_alive_with_tag(report.run_id)
    return CheckResult(ok=expected == observed, expected=expected, observed=observed, run_dir=str(run_dir))


class HarnessBugProvider:
    """A provider whose ``prepare`` raises: proves a harness bug still yields a report."""

    name = "harness-bug"

    def preflight(self, ctx: RunContext) -> Gate:
        return Gate(provider=ProviderInfo(name=self.name, version="health-check"),
                    model=ModelInfo(provider="none", model="none", admitted=True, admitted_by="builtin"),
                    lane="fake")

    def prepare(self, ctx: RunContext, gate: Gate) -> Invocation:
        raise RuntimeError("deliberate harness bug (health check report_always_written)")

    def interpret(self, ctx: RunContext, invocation: Invocation, result: ProcessResult) -> Outcome:
        raise AssertionError("unreachable: prepare always raises")


@dataclass
class Lab:
    """Scratch harness home, config, runs dir and synthetic ``ca`` executables."""

    workdir: Path
    _ca: dict[tuple[str, bool], Path] = field(default_factory=dict)
    _runs: dict[str, RunResult] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        self.home = self.workdir / "home"
        self.runs_dir = self.workdir / "runs"
        self.bin_dir = self.workdir / "bin"
        self.config_path = self.workdir / "cto-harness.toml"
        for directory in (self.home, self.runs_dir, self.bin_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "# Written by cto-harness health/validate: the lab's Case model allowlist.\n"
            f'[providers.case]\nadmitted_models = ["{ADMITTED_MODEL[0]}/{ADMITTED_MODEL[1]}"]\n',
            encoding="utf-8")

    def base_environ(self) -> dict[str, str]:
        """A minimal caller environment: nothing of the operator's settings leaks in."""
        environ = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "CTO_HARNESS_HOME": str(self.home),
            "CTO_HARNESS_CONFIG": str(self.config_path),
        }
        if not choose_sandbox(environ).confined:
            # No bubblewrap here: the lab's own synthetic ``ca`` runs unconfined (a real-lane
            # run would be blocked); sandbox_confines_provider reports the missing sandbox.
            environ["CTO_HARNESS_SANDBOX"] = "none"
        return environ

    def synthetic_ca(self, behaviour: str, *, admitted: bool = True) -> Path:
        """A synthetic ``ca``; admitted ones are admitted into this lab's store."""
        key = (behaviour, admitted)
        if key not in self._ca:
            path = write_synthetic_ca(self.bin_dir / ("admitted" if admitted else "unadmitted"), behaviour)
            if admitted:
                admit_synthetic(path, home=self.home)
            else:
                with path.open("a", encoding="utf-8") as fh:
                    fh.write("# never admitted\n")
            self._ca[key] = path
        return self._ca[key]

    def case_environ(self, behaviour: str | None, *, admitted: bool = True,
                     model: tuple[str, str] | None = ADMITTED_MODEL, **extra: str) -> dict[str, str]:
        """The caller environment of a Case run (``behaviour`` None: a missing binary)."""
        environ = self.base_environ()
        environ["CTO_HARNESS_CASE_BIN"] = str(
            self.synthetic_ca(behaviour, admitted=admitted) if behaviour else self.bin_dir / "missing" / "ca")
        environ["CTO_HARNESS_CASE_TIMEOUT_SECONDS"] = f"{LAB_TIMEOUT_S:g}"
        if model is not None:
            environ["CTO_HARNESS_CASE_MODEL_PROVIDER"], environ["CTO_HARNESS_CASE_MODEL"] = model
        environ.update(extra)
        return environ

    def run(self, key: str, *, environ: Mapping[str, str], provider: str = "case",
            options: RunOptions | None = None) -> RunResult:
        """Run once per ``key`` (later calls reuse the result).

        Raises:
            HarnessInterrupted: the harness was signalled during the run.
        """
        if key not in self._runs:
            result = run_stage2(RunRequest(provider=provider, runs_dir=self.runs_dir, environ=dict(environ),
                                           options=options or RunOptions(), recover=False))
            interrupted = _interruption(result.report)
            if interrupted is not None:
                raise HarnessInterrupted(interrupted)
            self._runs[key] = result
        return self._runs[key]

    def every_run_dir_has_a_verified_report(self) -> CheckResult:
        """Every run dir the lab created holds a report that verifies against its artifacts."""
        problems: dict[str, str] = {}
        run_dirs = sorted(p for p in self.runs_dir.iterdir() if p.is_dir())
        for run_dir in run_dirs:
            verified = verify_run(run_dir, home=self.home)
            if not verified.ok:
                problems[run_dir.name] = verified.problems[0] if verified.problems else "not ok"
        return CheckResult(ok=bool(run_dirs) and not problems,
                           expected={"run_dirs_without_verified_report": {}},
                           observed={"run_dirs_without_verified_report": problems, "run_dirs": len(run_dirs)},
                           run_dir=str(self.runs_dir))


def _interruption(report: Report) -> str | None:
    if report.verdict == "error":
        for reason in report.reasons:
            if reason.startswith("interrupted: the harness received "):
                return reason.rsplit(" ", 1)[-1]
    return None


def admit_synthetic(path: Path, *, home: Path) -> str:
    """Admit a synthetic ``ca`` as provider ``case`` into ``home``'s store; return its digest.

    The record says ``synthetic: true``, and so does every report of a run of it: a lab
    run is never evidence of real Case.
    """
    entry = catalog_entry("case", load_catalog(HarnessConfig()))
    record, _ = admit(entry, home=home, environ={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, binary=path,
                      synthetic=True)
    return record.sha256


LabCheck = Callable[[Lab], CheckResult]


@dataclass(frozen=True)
class SuiteResult:
    """The outcome of a named set of checks run in one lab."""

    ok: bool
    checks: dict[str, CheckResult]
    workdir: str
    kept: bool

    def to_json(self) -> dict[str, Any]:
        counts = {status: sum(c.status == status for c in self.checks.values()) for status in ("ok", "fail", "skip")}
        return {"ok": self.ok, "counts": counts, "checks": {name: c.to_json() for name, c in self.checks.items()},
                "workdir": self.workdir, "kept": self.kept}


def combine(parts: Mapping[str, CheckResult]) -> CheckResult:
    """One check made of several runs: ok only if every part is (a skipped part is not ok)."""
    first = next(iter(parts.values()), None)
    return CheckResult(ok=bool(parts) and all(p.ok for p in parts.values()),
                       expected={k: p.expected for k, p in parts.items()},
                       observed={k: p.observed for k, p in parts.items()},
                       run_dir=first.run_dir if first else None)


def run_checks(checks: Mapping[str, LabCheck], *, workdir: Path | None = None) -> SuiteResult:
    """Run ``checks`` in order in one lab; a check that raises fails (it never aborts the suite).

    Without ``workdir`` the lab is a temporary directory, removed afterwards.

    Raises:
        HarnessInterrupted: the harness was signalled (SIGINT/SIGTERM).
    """
    kept = workdir is not None
    root = workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="cto-harness-lab-"))
    try:
        lab = Lab(root)
        results: dict[str, CheckResult] = {}
        for name, check in checks.items():
            try:
                results[name] = check(lab)
            except Exception as exc:
                results[name] = CheckResult(ok=False, expected="the check completes",
                                            observed=f"{type(exc).__name__}: {exc}")
        return SuiteResult(ok=any(r.status == "ok" for r in results.values())
                           and all(r.status != "fail" for r in results.values()), checks=results,
                           workdir=str(lab.workdir), kept=kept)
    finally:
        if not kept:
            shutil.rmtree(root, ignore_errors=True)
