"""Stage 2: run one fixture through one provider, grade it, write the evidence.

The pipeline is a sequence of small stages that fill a ``RunState``; ``run_stage2``
is the single boundary where exceptions become a verdict and the report is written
(in ``finally``), whatever happened.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import secrets
import signal
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from cto_harness.core import ConfigError, HarnessConfig, harness_home, load_config
from cto_harness.egress import Egress
from cto_harness.evidence import (
    BackendBlock,
    ChangesBlock,
    EventLog,
    FixtureRef,
    ProviderBlock,
    Redactor,
    Report,
    StreamInfo,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    claim_run_dir,
    create_run_dir,
    escape_name,
    sha256_file,
    utc_now,
)
from cto_harness.fixtures import Fixture, FixtureError, load_fixture, resolve_fixture
from cto_harness.proc import (
    CapturedStream,
    HarnessInterrupted,
    ProcessResult,
    Sandbox,
    SandboxUnavailableError,
    SpawnError,
    choose_sandbox,
    run_bounded,
    wrap,
)
from cto_harness.providers import (
    Gate,
    Invocation,
    Provider,
    ProviderSettingError,
    RunContext,
    RunOptions,
    get_provider,
)
from cto_harness.runner._egress import egress_policy, plan_run_egress, record_egress, settle_endpoint_failure
from cto_harness.runner._finalize import RunState, redact_text, write_report
from cto_harness.runner._grading import Grade, run_grading, tests_block
from cto_harness.runner._held_grader import HeldGrader
from cto_harness.runner._recover import recover_runs
from cto_harness.runner._safe_copy import keep_state_dir
from cto_harness.runner._sandbox_policy import SandboxPolicy, provider_policy
from cto_harness.runner._verifier import fit_grader, stage_held_copy
from cto_harness.runner._workspace import Baseline, compute_changes, populate_workspace, vouched_digests

DEFAULT_MAX_OUTPUT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class RunRequest:
    """One Stage 2 run as the operator asked for it."""

    provider: str = "fake"
    fixture: str = "r1-string-slugify"
    runs_dir: Path = Path("harness-runs")
    options: RunOptions = field(default_factory=RunOptions)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    recover: bool = True
    """Finalise orphaned run dirs (no report, no live owner) in runs_dir first."""
    run_dir: Path | None = None
    """Exact run dir to create (must not exist) instead of a new name under runs_dir (jobs use this)."""
    grader: HeldGrader | None = None
    """A grading sandbox the caller started ahead (``hold_grader``); the run uses it if it fits
    and closes it. Without one the run starts its own once the fixture is known."""


@dataclass(frozen=True)
class RunResult:
    report: Report
    run_dir: Path
    recovered: list[Path]


def run_stage2(request: RunRequest) -> RunResult:
    """Run the whole lifecycle; always returns a written, valid report.

    Raises:
        UnknownProviderError, UnknownFixtureError, ConfigError: usage errors, raised
            before any run directory exists.
    """
    config = load_config(request.environ)
    check_timeouts(request)
    provider = get_provider(request.provider, config)
    fixture_path = resolve_fixture(request.fixture)
    runs_dir = request.runs_dir.resolve()
    recovered = recover_runs(runs_dir, home=harness_home(request.environ)) if request.recover else []

    fixture: Fixture | None = None
    fixture_error: str | None = None
    try:
        fixture = load_fixture(fixture_path, builtin=fixture_path.is_relative_to(_builtin_root()),
                               digest_cache=harness_home(request.environ) / "cache" / "fixture-digests")
    except FixtureError as exc:
        fixture_error = str(exc)
    fixture_id = fixture.id if fixture else fixture_path.name

    if request.run_dir is not None:
        run = claim_run_dir(request.run_dir, f"{request.run_dir.name}-{secrets.token_hex(6)}")
    else:
        run = create_run_dir(runs_dir, fixture_id)
    events = EventLog(run.path / "events.jsonl")
    state = RunState(
        run_id=run.run_id,
        run_dir=run.path,
        started_at=utc_now(),
        fixture=FixtureRef(
            id=fixture_id,
            digest=fixture.digest if fixture else None,
            title=fixture.title if fixture else None,
            builtin=fixture.builtin if fixture else False,
        ),
        provider=ProviderBlock(name=request.provider),
        lane="fake" if request.provider == "fake" else "real",
        harness_home=harness_home(request.environ),
    )
    grader: HeldGrader | None = None
    try:
        events.emit(
            "run_started",
            run_id=run.run_id,
            fixture=fixture_id,
            provider=request.provider,
            lane=state.lane,
            harness_pid=os.getpid(),
        )
        if fixture is None:
            state.decide("blocked", "fixture-invalid", f"fixture invalid: {fixture_error}")
        else:
            # Started now, its interpreter and pytest load while the agent works.
            grader = fit_grader(request.grader, fixture, request.environ, tag=f"{run.run_id}-grading")
            _pipeline(provider, fixture, request, config, state, events, grader)
    except HarnessInterrupted as exc:
        state.overrule("error", "harness-error", f"interrupted: the harness received {exc.signame}")
    except Exception as exc:
        state.record_harness_error(exc)
    finally:
        for held in (grader, request.grader):
            if held is not None:
                held.close()
        with _signals_deferred():
            report = write_report(state, events)
            events.close()
            run.release()
    return RunResult(report=report, run_dir=run.path, recovered=recovered)


def check_timeouts(request: RunRequest) -> None:
    """A timeout is a positive, finite number of seconds: nan or inf would switch the deadline off.

    ``CTO_HARNESS_<P>_TIMEOUT_SECONDS`` is checked by the provider's settings (a bad one
    blocks the run, with a report); a non-finite adapter timeout blocks in ``_execute``.

    Raises:
        ConfigError: ``--timeout`` is not.
    """
    if request.options.timeout_s is not None and not valid_timeout(request.options.timeout_s):
        raise ConfigError(f"--timeout {request.options.timeout_s!r} is not a positive, finite number of seconds")


def valid_timeout(value: float) -> bool:
    return math.isfinite(value) and value > 0


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGTERM/SIGINT while the report is written, so a second signal cannot tear it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _builtin_root() -> Path:
    from cto_harness.fixtures import builtin_fixtures_dir

    return builtin_fixtures_dir().resolve()


def _pipeline(provider: Provider, fixture: Fixture, request: RunRequest, config: HarnessConfig,
              state: RunState, events: EventLog, grader: HeldGrader | None) -> None:
    run_dir = state.run_dir
    ctx = RunContext(
        run_id=state.run_id,
        run_dir=run_dir,
        workspace=run_dir / "workspace",
        task_dir=run_dir / "task",
        backend_dir=run_dir / "backend",
        fixture=fixture,
        options=request.options,
        environ=request.environ,
        config=config,
        harness_home=harness_home(request.environ),
    )
    for directory in (ctx.task_dir, ctx.backend_dir):
        directory.mkdir()

    baseline = _prepare_workspace(ctx, state, events)
    if baseline is None:
        return
    stage_held_copy(grader, fixture)  # a few big files for the held grader, copied while the agent runs
    try:
        gate = _preflight(provider, ctx, state, events)
        if gate.blocked is not None:
            return
        sandbox = choose_sandbox(request.environ, required=state.lane != "fake")
        egress = plan_run_egress(ctx, gate, state, isolated=sandbox.confined)
        if egress is None:
            return
        invocation = provider.prepare(replace(ctx, environ=egress.provider_environ(ctx.environ)), gate)
    except (ProviderSettingError, SandboxUnavailableError) as exc:
        what = "provider misconfigured: " if isinstance(exc, ProviderSettingError) else ""
        reason = f"{what}{exc}; no provider process was started"
        atomic_write_text(ctx.backend_dir / "provider-unavailable.txt", reason + "\n")
        state.decide("blocked", "provider-unavailable", reason)
        return
    state.secrets = [s for s in invocation.secrets if s]
    events.redactor = Redactor(state.secrets)
    _record_invocation(ctx, invocation, state)
    if not _digest_still_admitted(invocation, ctx, state, events):
        return
    policy = egress_policy(provider_policy(ctx, invocation, gate, request.runs_dir.resolve()), egress)
    result = _execute(invocation, ctx, state, events, request.max_output_bytes, sandbox, policy, egress)
    if result is None:
        return
    record_egress(egress.finish(), state, events)
    if result.interrupted:
        raise HarnessInterrupted(result.interrupted)
    _keep_state_dirs(ctx, invocation)
    outcome = provider.interpret(ctx, invocation, result)
    state.agent_result = outcome.agent_result
    if outcome.usage is not None:
        state.usage = outcome.usage
    patch = _collect_changes(ctx, invocation, baseline, state, events)
    grade = run_grading(fixture, patch, run_dir / "grading", sandbox, ctx.harness_home, tag=f"{state.run_id}-grading",
                        held=grader)
    _record_grade(grade, state, events)
    if grade.result is not None and grade.result.interrupted:
        raise HarnessInterrupted(grade.result.interrupted)
    _decide(result, outcome.failure_class, list(outcome.reasons), state)
    settle_endpoint_failure(egress.finish(), state)


def _prepare_workspace(ctx: RunContext, state: RunState, events: EventLog) -> Baseline | None:
    try:
        ready = populate_workspace(ctx.fixture, ctx.workspace, state.run_dir / "baseline.git",
                                   ctx.harness_home / "cache")
    except FixtureError as exc:
        state.decide("blocked", "fixture-invalid", f"fixture invalid: {exc}")
        return None
    state.known_digest = vouched_digests(ready.baseline, ready.copied)
    events.emit("workspace_ready", baseline=ready.baseline.commit, files=len(ready.files),
                copy_s=round(ready.copy_s, 6), baseline_s=round(ready.baseline_s, 6))
    return ready.baseline


def _preflight(provider: Provider, ctx: RunContext, state: RunState, events: EventLog) -> Gate:
    gate = provider.preflight(ctx)
    state.lane = gate.lane
    state.provider = gate.provider
    state.model = gate.model
    blocked = gate.blocked
    events.emit(
        "provider_preflight",
        ok=blocked is None or blocked.failure_class == "model-not-admitted",
        provider=gate.provider.name,
        executable=gate.provider.executable,
        sha256=gate.provider.sha256,
        lane=gate.lane,
        failure_class=blocked.failure_class if blocked and blocked.failure_class != "model-not-admitted" else None,
    )
    events.emit(
        "model_admission",
        provider=gate.model.provider,
        model=gate.model.model,
        admitted=gate.model.admitted,
        admitted_by=gate.model.admitted_by,
    )
    synthetic = gate.provider.synthetic_note()
    if synthetic is not None:
        state.reasons.append(synthetic)
    if blocked is not None:
        atomic_write_text(ctx.backend_dir / blocked.evidence_file, blocked.reason.rstrip() + "\n")
        state.decide("blocked", blocked.failure_class, blocked.reason.strip().splitlines()[0])
        for also in gate.also_blocked:
            atomic_write_text(ctx.backend_dir / also.evidence_file, also.reason.rstrip() + "\n")
            state.decide("blocked", also.failure_class, also.reason.strip().splitlines()[0])
    return gate


def _record_invocation(ctx: RunContext, invocation: Invocation, state: RunState) -> None:
    secrets = state.secrets
    atomic_write_json(  # durable=False: see atomic_write_bytes (report.json records its digest)
        ctx.backend_dir / "invocation.json",
        {
            "argv": [redact_text(a, secrets) for a in invocation.argv],
            "cwd": str(invocation.cwd),
            "env": {k: redact_text(v, secrets) for k, v in sorted(invocation.env.items())},
            "timeout_s": invocation.timeout_s,
            "expected_sha256": invocation.expected_sha256,
        },
        durable=False,
    )


def _digest_still_admitted(invocation: Invocation, ctx: RunContext, state: RunState, events: EventLog) -> bool:
    """Re-hash the executable immediately before exec: the bytes that run are the admitted ones."""
    if invocation.expected_sha256 is None:
        return True
    executable = Path(invocation.argv[0])
    try:
        observed = sha256_file(executable)
    except OSError as exc:
        observed = f"unreadable ({exc.strerror})"
    state.provider = state.provider.model_copy(update={"sha256": observed})
    events.emit("digest_check", executable=str(executable), expected=invocation.expected_sha256,
                observed=observed, ok=observed == invocation.expected_sha256)
    if observed == invocation.expected_sha256:
        return True
    reason = (f"provider digest mismatch: {executable} hashes to {observed}, "
              f"admitted digest is {invocation.expected_sha256}; no provider process was started")
    atomic_write_text(ctx.backend_dir / "provider-digest-mismatch.txt", reason + "\n")
    state.decide("blocked", "provider-digest-mismatch", reason)
    return False


def _execute(invocation: Invocation, ctx: RunContext, state: RunState, events: EventLog,
             max_output_bytes: int, sandbox: Sandbox, policy: SandboxPolicy, egress: Egress) -> ProcessResult | None:
    if not valid_timeout(invocation.timeout_s):
        reason = (f"provider timeout {invocation.timeout_s!r} s is not positive and finite; "
                  "no provider process was started")
        atomic_write_text(ctx.backend_dir / "provider-unavailable.txt", reason + "\n")
        state.decide("blocked", "provider-unavailable", reason)
        return None
    argv = [redact_text(a, state.secrets) for a in invocation.argv]
    state.backend = BackendBlock(timeout_s=invocation.timeout_s, argv=argv, sandbox=sandbox.kind)
    if not sandbox.confined:
        state.reasons.append(f"NO SANDBOX: {sandbox.reason}")
    env = dict(invocation.env)
    if sandbox.kind != "none":
        tmp = ctx.backend_dir / "tmp"
        tmp.mkdir(exist_ok=True)
        env.setdefault("TMPDIR", str(tmp))

    def started(pid: int) -> None:
        state.backend = state.backend.model_copy(update={"process_started": True, "pid": pid})
        events.emit(invocation.process_event, pid=pid, argv=argv, cwd=str(invocation.cwd),
                    timeout_s=invocation.timeout_s, tag=state.run_id, create_time=_create_time(pid),
                    sandbox=sandbox.kind)

    try:
        egress.start(state.secrets)
    except OSError as exc:
        egress.finish()
        reason = f"the egress proxy could not start: {exc}; no provider process was started"
        atomic_write_text(ctx.backend_dir / "provider-unavailable.txt", reason + "\n")
        state.decide("blocked", "provider-unavailable", reason)
        return None
    try:
        result = run_bounded(
            wrap(egress.command(invocation.argv), sandbox, writable=policy.writable, readable=policy.readable,
                 hidden=policy.hidden, network=policy.network, cwd=invocation.cwd,
                 overlaid=policy.overlaid if sandbox.confined else ()),
            cwd=invocation.cwd,
            env=egress.provider_env(env),
            timeout_s=invocation.timeout_s,
            stdout_path=ctx.backend_dir / "stdout.txt",
            stderr_path=ctx.backend_dir / "stderr.txt",
            max_output_bytes=max_output_bytes,
            tag=state.run_id,
            on_start=started,
        )
    except SpawnError as exc:
        reason = f"provider could not be started: {exc}"
        atomic_write_text(ctx.backend_dir / "provider-unavailable.txt", reason + "\n")
        state.decide("blocked", "provider-unavailable", reason)
        return None
    finally:
        egress.finish()
    state.backend = state.backend.model_copy(update={
        "exit_code": result.exit_code,
        "timed_out": result.timed_out,
        "duration_s": round(result.duration_s, 6),
        "interrupted": result.interrupted,
        "stdout": _stream(result.stdout),
        "stderr": _stream(result.stderr),
        "killed_pids": list(result.killed_pids),
        "leftover_pids": list(result.leftover_pids),
    })
    events.emit("provider_process_exited", pid=result.pid, exit_code=result.exit_code,
                timed_out=result.timed_out, duration_s=round(result.duration_s, 6),
                killed_pids=list(result.killed_pids), leftover_pids=list(result.leftover_pids),
                interrupted=result.interrupted)
    if result.timed_out:
        atomic_write_text(ctx.backend_dir / "provider-timeout.txt", (
            f"provider timed out: limit {invocation.timeout_s:g} s, elapsed {result.duration_s:.3f} s\n"
            f"terminated process group {result.pid} (SIGTERM, grace, SIGKILL)\n"
            f"pids killed: {' '.join(map(str, result.killed_pids)) or 'none'}\n"))
    return result


def _create_time(pid: int) -> float | None:
    """Recorded so recovery can tell this provider from a later process that reused its pid."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _stream(captured: CapturedStream) -> StreamInfo:
    return StreamInfo(bytes_total=captured.bytes_total, bytes_kept=captured.bytes_kept,
                      truncated=captured.truncated)


def _keep_state_dirs(ctx: RunContext, invocation: Invocation) -> None:
    for source_rel, dest_rel in invocation.state_dirs.items():
        keep_state_dir(ctx.workspace, source_rel, ctx.backend_dir, dest_rel)


def _collect_changes(ctx: RunContext, invocation: Invocation, baseline: Baseline, state: RunState,
                     events: EventLog) -> bytes:
    changes = compute_changes(ctx.workspace, state.run_dir / "baseline.git", baseline,
                              exclude_dirs=list(invocation.state_dirs))
    evidence = Redactor(state.secrets).data(changes.patch)  # the verifier grades the real patch
    atomic_write_bytes(state.run_dir / "patch.diff", evidence, durable=False)  # see atomic_write_bytes
    state.changes = ChangesBlock(
        files=[escape_name(name) for name in changes.files],
        patch_sha256=hashlib.sha256(evidence).hexdigest(),
        patch_bytes=len(evidence),
        excluded=sorted(invocation.state_dirs),
    )
    events.emit("changes_computed", files=state.changes.files, patch_bytes=len(changes.patch))
    return changes.patch


def _record_grade(grade: Grade, state: RunState, events: EventLog) -> None:
    state.tests = tests = tests_block(grade)
    if grade.dropped:
        state.reasons.append("the verifier did not apply the agent's changes to grading tests, test "
                             "configuration and binary files: " + ", ".join(grade.dropped))
    state.reasons.extend(f"verifier: {problem}" for problem in grade.problems)
    events.emit("tests_finished", passed=tests.passed, exit_code=tests.exit_code, timed_out=tests.timed_out,
                counts=grade.counts.model_dump() if grade.counts else None,
                tampered_files=grade.dropped, expected=tests.expected, passed_ids=tests.passed_ids,
                missing=len(grade.missing))


def _decide(result: ProcessResult, protocol_failure: str | None, protocol_reasons: list[str],
            state: RunState) -> None:
    """Pass needs all of: exited 0 in time, protocol success, a non-empty patch, tests pass."""
    if result.timed_out:
        state.decide("fail", "provider-timeout", f"provider exceeded its {state.backend.timeout_s:g} s timeout")
    elif result.exit_code != 0:
        state.decide("fail", "provider-crashed", f"provider exited with status {result.exit_code}")
    elif protocol_failure is not None:
        state.decide("fail", protocol_failure, *protocol_reasons)
        protocol_reasons = []
    elif state.changes.patch_bytes == 0:
        state.decide("fail", "no-changes", "the provider changed nothing in the workspace")
    elif not state.tests.passed:
        state.decide("fail", "tests-failed", "fixture tests failed in the isolated verifier")
    else:
        state.decide("pass", None, "provider completed, patch non-empty, fixture tests pass")
    state.reasons.extend(protocol_reasons)
    if result.leftover_pids:
        state.reasons.append(f"the provider left {len(result.leftover_pids)} process(es) running after it exited; "
                             f"the harness killed them: {list(result.leftover_pids)}")
    if state.verdict != "pass" and state.tests.ran:
        state.reasons.append(f"fixture tests {'passed' if state.tests.passed else 'failed'} "
                             "on the provider's patch in the isolated verifier")


