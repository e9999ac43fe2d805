"""An agent that floods its own dirs cannot push the harness's evidence out of the walk budget.

The attack (red-team, confirmed): the hostile agent fills ``backend/flood/`` (agent-writable:
its HOME and tmp live in ``backend/``) with more empty files than the walker's file budget.
``backend`` sorted first and shared one budget with everything else, so ``grading/``,
``patch.diff``, ``task/`` and ``workspace/`` were listed unhashed (``file budget``), the
attestation had no ``patch.diff`` subject, and after the run an attacker could swap in another
patch, rewrite ``grading/verifier.json``, edit the workspace and add files to ``task/``:
``verify`` still said ok.

The budget is shrunk in-process (the run and ``verify`` share it) so the flood stays small;
the shape is the real one: the agent writes, the harness scans.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import cli_env

from cto_harness.evidence import Budget, verify_run
from cto_harness.fixtures import builtin_fixtures_dir
from cto_harness.providers import RunOptions
from cto_harness.runner import RunRequest, RunResult, run_stage2

MAX_FILES = 400
"""The walk's file budget for these tests; the flood is bigger than it."""
FLOOD = 2 * MAX_FILES

FIX = textwrap.dedent(
    """\
    strings = workspace / "strings.py"
    strings.write_text(strings.read_text().replace(
        'return text.strip().replace(" ", "-")',
        'import re\\n    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")'))
    """
)
FLOOD_BACKEND = FIX + textwrap.dedent(
    f"""\
    flood = backend / "flood"
    flood.mkdir()
    for i in range({FLOOD}):
        (flood / f"f{{i:06d}}").touch()
    """
)


@pytest.fixture(autouse=True)
def small_budget(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every walk in this process (the run's scan, its redaction, ``verify``) gets a small file budget."""
    defaults = Budget.__init__.__defaults__
    assert defaults is not None
    monkeypatch.setattr(Budget.__init__, "__defaults__", (defaults[0], MAX_FILES, defaults[2]))
    assert Budget().max_files == MAX_FILES
    yield


def _run(tmp_path: Path, body: str) -> RunResult:
    script = tmp_path / "hostile-agent"
    script.write_text(f"#!{sys.executable}\nimport os, pathlib, sys\nworkspace = pathlib.Path(sys.argv[1])\n"
                      f"backend = workspace.parent / 'backend'\n{body}")
    script.chmod(0o755)
    environ = cli_env(tmp_path, CTO_HARNESS_COMMAND_BIN=str(script), CTO_HARNESS_COMMAND_ARGS="{workspace}",
                      CTO_HARNESS_COMMAND_MODEL_PROVIDER="local", CTO_HARNESS_COMMAND_MODEL="none")
    return run_stage2(RunRequest(provider="command", runs_dir=tmp_path / "runs", environ=environ,
                                 options=RunOptions(unadmitted=True, timeout_s=120), recover=False))


def _swap_patch(run: Path) -> None:
    solution = builtin_fixtures_dir() / "r1-string-slugify" / "solution.patch"
    (run / "patch.diff").write_bytes(solution.read_bytes())


def _rewrite_verifier(run: Path) -> None:
    path = run / "grading" / "verifier.json"
    data = json.loads(path.read_text())
    data["forged"] = True
    path.write_text(json.dumps(data))


def _edit_workspace(run: Path) -> None:
    path = run / "workspace" / "strings.py"
    path.write_text(path.read_text() + "\n# edited after the run\n")


TAMPERING: dict[str, Callable[[Path], None]] = {
    "patch.diff replaced by the fixture's solution": _swap_patch,
    "grading/verifier.json rewritten": _rewrite_verifier,
    "workspace/strings.py edited": _edit_workspace,
    "task/new-file added": lambda run: (run / "task" / "new-file").write_text("added after the run\n"),
}


def test_a_flooded_backend_leaves_the_harness_evidence_hashed_and_signed(tmp_path: Path) -> None:
    result = _run(tmp_path, FLOOD_BACKEND)
    run, report = result.run_dir, result.report
    home = tmp_path / "home"
    assert report.verdict == "pass", report.reasons
    assert report.artifacts_skipped_total >= FLOOD - MAX_FILES  # the flood did exhaust the budget
    skipped = {s.path for s in report.artifacts_skipped}
    assert all(p.startswith("backend/flood/") for p in skipped), sorted(skipped)[:5]
    for name in ("patch.diff", "grading/verifier.json", "backend/invocation.json", "backend/stdout.txt"):
        assert report.artifacts[name].sha256 is not None, (name, report.artifacts[name])
        assert report.artifacts[name].skipped is None
    assert report.artifacts["patch.diff"].sha256 == report.changes.patch_sha256
    signed = json.loads((run / "attestation.dsse.json").read_text())
    assert verify_run(run, home=home).ok, verify_run(run, home=home).problems

    for what, tamper in TAMPERING.items():
        copy = tmp_path / "copies" / what.replace(" ", "-").replace("/", "_")
        shutil.copytree(run, copy, symlinks=True)
        tamper(copy)
        verified = verify_run(copy, home=home)
        assert not verified.ok, f"{what}: verify still said ok"
    assert signed["payloadType"] == "application/vnd.in-toto+json"


def test_harness_evidence_over_its_own_budget_fails_closed(tmp_path: Path) -> None:
    """An agent that turns a harness-written file into a huge tree makes its own run fail, never pass."""
    body = FIX + textwrap.dedent(
        f"""\
        inv = backend / "invocation.json"
        inv.unlink()
        inv.mkdir()
        for i in range({FLOOD}):
            (inv / f"f{{i:06d}}").touch()
        """
    )
    result = _run(tmp_path, body)
    report = result.report
    assert report.verdict != "pass"
    assert any("evidence" in r and "budget" in r for r in report.reasons), report.reasons
    verified = verify_run(result.run_dir, home=tmp_path / "home")
    assert not verified.ok
    assert any("not hashed" in p for p in verified.problems), verified.problems
