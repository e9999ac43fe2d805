"""The fake provider: the default, deterministic lane. No network, no external tool.

Its agent is a real child process (``_agent.py``) so the runner's process control,
timeouts and output caps are exercised for real on every validation.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from cto_harness.core import ProcessResult
from cto_harness.evidence import sha256_file
from cto_harness.providers._agent_result import SUCCESS_STATUSES, parse_last_agent_result, read_capped
from cto_harness.providers._protocol import (
    Gate,
    Invocation,
    ModelInfo,
    Outcome,
    ProviderInfo,
    ProviderSettingError,
    RunContext,
)
from cto_harness.providers._settings import ProviderSettings

AGENT_SCRIPT = Path(__file__).with_name("_agent.py")
SCENARIOS = (
    "fix",
    "noop",
    "sleep",
    "hang-with-children",
    "crash",
    "protocol-error",
    "huge-output",
    "edit-tests",
    "binary-output",
    "fork-and-exit",
)


DEFAULT_SCENARIO = "fix"
"""Which scripted behaviour the fake agent shows when --scenario is not given."""


class FakeSettings(ProviderSettings):
    """Settings of the fake lane (``CTO_HARNESS_FAKE_*``)."""

    default_timeout_s = 300.0


class FakeProvider:
    name = "fake"

    def preflight(self, ctx: RunContext) -> Gate:
        return Gate(
            provider=ProviderInfo(name=self.name, executable=str(AGENT_SCRIPT),
                                  sha256=sha256_file(AGENT_SCRIPT), version="builtin"),
            model=ModelInfo(provider="fake", model="scripted", admitted=True, admitted_by="builtin"),
            lane="fake",
        )

    def prepare(self, ctx: RunContext, gate: Gate) -> Invocation:
        settings = FakeSettings.from_environ(ctx.environ, self.name)
        scenario = ctx.options.scenario or DEFAULT_SCENARIO
        if scenario not in SCENARIOS:
            raise ProviderSettingError(f"unknown fake scenario {scenario!r}; valid: {', '.join(SCENARIOS)}")
        data_dir = ctx.backend_dir / "fake"
        data_dir.mkdir(parents=True, exist_ok=True)
        solution = data_dir / "solution.patch"
        shutil.copyfile(ctx.fixture.solution_patch, solution)
        (ctx.task_dir / "instructions.md").write_text(
            f"# {ctx.fixture.title}\n\n{ctx.fixture.instructions}\n", encoding="utf-8")
        task = {
            "fixture_id": ctx.fixture.id,
            "scenario": scenario,
            "instructions_file": str(ctx.task_dir / "instructions.md"),
            "solution_patch": str(solution),
            "grading_tests": ctx.fixture.grading_tests,
            **dict(ctx.options.extra),
        }
        task_file = ctx.task_dir / "task.json"
        task_file.write_text(json.dumps(task, indent=2) + "\n", encoding="utf-8")
        home = ctx.backend_dir / "home"
        home.mkdir(exist_ok=True)
        env = {
            "PATH": ctx.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
        }
        return Invocation(
            argv=[sys.executable, "-I", "-S", str(AGENT_SCRIPT), "--task", str(task_file)],
            cwd=ctx.workspace,
            env=env,
            timeout_s=settings.timeout(ctx.options),
        )

    def interpret(self, ctx: RunContext, invocation: Invocation, result: ProcessResult) -> Outcome:
        parsed = parse_last_agent_result(read_capped(result.stdout.path))
        if parsed.result is None:
            return Outcome(failure_class="agent-protocol-error", reasons=(f"fake agent: {parsed.error}",))
        status = str(parsed.result.get("status", ""))
        if status not in SUCCESS_STATUSES:
            return Outcome(failure_class="agent-reported-failure", agent_result=parsed.result,
                           reasons=(f"agent reported status {status!r}",))
        return Outcome(failure_class=None, agent_result=parsed.result)
