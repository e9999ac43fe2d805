"""A synthetic WorkOS Case ``ca``: the template ``_synthetic_case`` turns into executables.

It speaks the contract observed on real ``ca`` (see ``docs/case.md``), not an idealised
one: ``ca run --task <slug>.task.json --mode unattended`` reads the task pair, resolves
the repo through ``$CASE_DATA_DIR/projects.json``, reads ``models.default`` from
``config.json`` and refuses with ``Fatal:`` (exit 1) when those are missing; a pipeline
that runs to its end exits 0 whether it succeeded or failed, printing ``[unattended] ``
lines on stdout, one JSON log object per stderr line (``spawning agent`` with each
agent's provider/model, ``pipeline finished`` naming the event log), its own event log
``.case/<slug>/events/run-<id>.jsonl`` (``pipeline_start`` ... ``pipeline_end``), a
``.case/<slug>/plan.json`` and an entry in ``.case/run-log.jsonl``; it commits its work
with git and rewrites the task JSON. Like real ``ca`` (pi-ai) its agents take the model
provider's key from the provider's standard variable (``OPENAI_API_KEY`` for ``openai``),
never from ``models.json``: without it every agent fails with an AGENT_RESULT parse error.
It only ever sees the workspace: the fix for ``r1-string-slugify`` is embedded here.
Every run dumps its environment to ``$HOME/synthetic-ca-environ.json`` so tests can
prove the allowlist. Never imported by the harness; ``BEHAVIOUR`` is set per copy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

BEHAVIOUR = "fix"
ENV_DUMP = "synthetic-ca-environ.json"
HELP = """ca - Case: an agentic harness that turns tasks into reviewed pull requests (synthetic)

Usage: ca <command> [options]

Commands:
  run          Run the pipeline for a task (--task <file> --mode attended|unattended)
  init         Create the Case data directory and config.json

Run `ca <command> --help` for command-specific options.
"""
SLUGIFY_FIX = '''"""Small string helpers."""

import re

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def slugify(text):
    """Turn a title into a URL slug: "Hello, World!" -> "hello-world"."""
    return _NOT_ALNUM.sub("-", text.lower()).strip("-")
'''
_SLEEP_FOREVER = "import time\nwhile True:\n    time.sleep(60)\n"
PI_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "google": "GEMINI_API_KEY"}
NO_RESULT = "AGENT_RESULT start delimiter not found"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def log(msg: str, **fields: Any) -> None:
    print(json.dumps({"ts": _now(), "level": "info", "msg": msg, **fields}), file=sys.stderr, flush=True)


def say(text: str) -> None:
    print(f"[unattended] {text}", flush=True)


def die(prefix: str, text: str) -> NoReturn:
    print(f"{prefix}: {text}", file=sys.stderr, flush=True)
    sys.exit(1)


def dump_environment() -> None:
    home = Path(os.environ.get("HOME", "/nonexistent"))
    if home.is_dir():
        (home / ENV_DUMP).write_text(json.dumps(dict(os.environ), indent=2, sort_keys=True) + "\n")


def parse_run_args(args: list[str]) -> tuple[Path, str]:
    task: str | None = None
    mode: str | None = None
    it = iter(args)
    for arg in it:
        if arg == "--task":
            task = next(it, None)
        elif arg == "--mode":
            mode = next(it, None)
        else:
            die("Error", f"unknown option {arg!r} for `ca run`")
    if task is None:
        die("Error", "missing required option --task <file>")
    if mode not in ("attended", "unattended"):
        die("Error", f"invalid --mode {mode!r} (expected attended or unattended)")
    return Path(task), mode


class Run:
    """One pipeline run: the setup Case reads, then a scripted pipeline."""

    def __init__(self, task_path: Path) -> None:
        data_dir = Path(os.environ.get("CASE_DATA_DIR") or Path.home() / ".case")
        config_path = data_dir / "config.json"
        if not config_path.is_file():
            die("Fatal", f"config.json not found in {data_dir}; run `ca init` first")
        config = json.loads(config_path.read_text())
        default = (config.get("models") or {}).get("default") or {}
        if not default.get("provider") or not default.get("model"):
            # Real Case would silently fall back to anthropic/claude-sonnet-4-6 here.
            die("Fatal", "models.default is not set in config.json")
        self.provider, self.model = str(default["provider"]), str(default["model"])
        projects_path = data_dir / str(config.get("projects", "./projects.json"))
        if not projects_path.is_file():
            die("Fatal", f"projects file not found: {projects_path}")
        if not task_path.is_file():
            die("Error", f"task file not found: {task_path}")
        self.task_path = task_path
        self.task: dict[str, Any] = json.loads(task_path.read_text())
        md = task_path.with_name(task_path.name.removesuffix(".task.json") + ".md")
        if not md.is_file():
            die("Error", f"task markdown not found: {md}")
        self.title = md.read_text().splitlines()[0].lstrip("# ").strip()
        repos = json.loads(projects_path.read_text()).get("repos", [])
        repo = next((r for r in repos if r.get("name") == self.task.get("repo")), None)
        if repo is None:
            die("Error", f"repo {self.task.get('repo')!r} not found in {projects_path}")
        self.repo = Path(repo["path"])
        self.task_id = str(self.task.get("id"))
        self.state = self.repo / ".case"
        self.run_id = str(uuid.uuid4())
        self.event_log = self.state / self.task_id / "events" / f"run-{self.run_id}.jsonl"
        self.started = _now()

    def event(self, kind: str, **fields: Any) -> None:
        self.event_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.event_log, "a") as fh:
            fh.write(json.dumps({"ts": _now(), "runId": self.run_id, "event": kind, **fields}) + "\n")

    def spawn(self, agent: str, phase: str) -> bool:
        """Start a phase's agent the way real Case logs it; False when its model call cannot work."""
        self.event("phase_start", phase=phase, agent=agent)
        model = "some-other-model" if BEHAVIOUR == "wrong-model" and agent == "verifier" else self.model
        log("spawning agent", agent=agent, cwd=str(self.repo), provider=self.provider, model=model, timeout=600000)
        key_env = PI_KEY_ENV.get(self.provider)
        if os.environ.get("PI_CODING_AGENT_DIR") and key_env and not os.environ.get(key_env):
            log("agent completed", agent=agent, durationMs=1, status="failed")
            log(f"phase:{phase}", phase=phase, status="failed", error=NO_RESULT)
            return False
        return True

    def set_task(self, status: str, agents: dict[str, str]) -> None:
        self.task["status"] = status
        self.task["agents"] = {name: {"started": self.started, "completed": _now(), "status": st}
                               for name, st in agents.items()}
        self.task_path.write_text(json.dumps(self.task, indent=2) + "\n")

    def finish(self, outcome: str, failed_agent: str | None = None, phase: str | None = None) -> NoReturn:
        entry = {"runId": f"run-{os.getpid()}", "taskId": self.task_id, "startedAt": self.started,
                 "completedAt": _now(), "outcome": outcome, "failedAgent": failed_agent}
        self.state.mkdir(exist_ok=True)
        with open(self.state / "run-log.jsonl", "a") as fh:
            fh.write(json.dumps(entry) + "\n")
        self.event("pipeline_end", outcome=outcome, failedAgent=failed_agent, durationMs=1)
        log("pipeline finished", outcome=outcome, failedAgent=failed_agent, eventLog=str(self.event_log))
        say("Pipeline completed successfully." if outcome == "completed" else f"Pipeline failed at {phase} phase.")
        sys.exit(0)

    def fix_slugify(self) -> str | None:
        """Write the fixed strings.py and commit it; return an error text on failure."""
        target = self.repo / "strings.py"
        if not target.is_file() or "def slugify" not in target.read_text():
            return "synthetic ca can only fix r1-string-slugify (no slugify in strings.py)"
        target.write_text(SLUGIFY_FIX)
        for argv in (["git", "add", "strings.py"], ["git", "commit", "-q", "-m", "fix(strings): slugify rules"]):
            done = subprocess.run(argv, cwd=self.repo, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                return f"{' '.join(argv[:2])} failed: {done.stderr.strip()[-300:]}"
        return None

    def pipeline(self) -> NoReturn:
        if BEHAVIOUR == "fatal":
            die("Fatal", f"Model not found: {self.provider}/{self.model}")
        self.state.mkdir(exist_ok=True)
        (self.state / self.task_id).mkdir(exist_ok=True)
        (self.state / self.task_id / "plan.json").write_text(json.dumps({"runId": self.run_id, "taskId": self.task_id}))
        log("pipeline started", phase="dag", mode="unattended", task=self.task_id, runId=self.run_id)
        self.event("pipeline_start", taskId=self.task_id, profile=self.task.get("profile"))
        say(f"Task {self.task_id}: {self.title}")
        say(f"Model: {self.provider}/{self.model}")
        self.set_task("implementing", {"implementer": "running"})
        say("Running implementer...")
        if not self.spawn("implementer", "implement"):
            self.set_task("implementing", {"implementer": "failed"})
            self.finish("failed", "implementer", "implement")
        if BEHAVIOUR == "sleep":
            time.sleep(3600)
        if BEHAVIOUR == "hang-with-children":
            for _ in range(2):
                subprocess.Popen([sys.executable, "-c", _SLEEP_FOREVER], start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(3600)
        if BEHAVIOUR == "no-final-line":
            log("phase:implement", status="running")
            sys.exit(0)
        if BEHAVIOUR == "protocol-error":
            delimiter = "AGENT_RESULT start delimiter not found"
            log("phase:implement", status="failed", error=delimiter)
            log("retrying agent", agent="implementer", status="retrying", failureClass="agent-protocol-error")
            log("phase:implement", status="failed", error=delimiter)
            self.set_task("implementing", {"implementer": "failed"})
            self.finish("failed", "implementer", "implement")
        if BEHAVIOUR == "fix":
            error = self.fix_slugify()
            if error is not None:
                log("phase:implement", status="failed", error=error)
                self.set_task("implementing", {"implementer": "failed"})
                self.finish("failed", "implementer", "implement")
        log("phase:implement", status="completed")
        say("Running verifier...")
        if not self.spawn("verifier", "verify"):
            self.finish("failed", "verifier", "verify")
        if BEHAVIOUR == "agent-failure":
            log("phase:verify", status="failed", error="verifier: the reproduced scenario still fails",
                failureClass="verification-failed")
            self.set_task("verifying", {"implementer": "completed", "verifier": "failed"})
            self.finish("failed", "verifier", "verify")
        log("phase:verify", status="completed")
        self.set_task("closing", {"implementer": "completed", "verifier": "completed"})
        self.finish("completed")


def main(argv: list[str]) -> int:
    dump_environment()
    if not argv or argv[0] in ("--help", "-h", "help"):
        print(HELP)
        return 0
    if argv[0] != "run":
        die("Error", f"unknown command {argv[0]!r}; see `ca --help`")
    if "--help" in argv[1:]:
        print("Usage: ca run --task <file> --mode attended|unattended")
        return 0
    task, _mode = parse_run_args(argv[1:])
    Run(task).pipeline()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
