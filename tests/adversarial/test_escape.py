"""A hostile provider tries to get out of its sandbox: one test per attack.

Each attack is a ``command``-provider script run as root by the harness (as in CI). The
script also makes the real fix, so the run would pass: what matters is that the attack
changed nothing outside the run's own dirs, read nothing it must not see, reached nothing
on the network and left nothing running, and that the report exists and verifies.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from tests.conftest import CliRun, cli_env, hostile_agent_env, run_cli

import cto_harness
from cto_harness.selfcheck import CountingListener, host_address

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")

FIX = textwrap.dedent(
    """\
    import json, os, pathlib, socket, subprocess, sys
    workspace = pathlib.Path(sys.argv[1])
    run_dir = workspace.parent
    strings = workspace / "strings.py"
    strings.write_text(strings.read_text().replace(
        'return text.strip().replace(" ", "-")',
        'import re\\n    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")'))
    outcome = {}
    def record(key, value):
        outcome[key] = value
        (workspace / "attack.json").write_text(json.dumps(outcome))
    """
)


def _agent(tmp_path: Path, body: str, **extra: str) -> dict[str, str]:
    return hostile_agent_env(tmp_path, f"{FIX}{textwrap.dedent(body)}", CTO_HARNESS_COMMAND_TIMEOUT_SECONDS="120",
                             **extra)


def _run(runs_dir: Path, env: dict[str, str]) -> tuple[CliRun, dict[str, str]]:
    result = run_cli("run", "--provider", "command", "--runs-dir", str(runs_dir), env=env)
    assert result.report is not None and result.run_dir is not None, result.stdout + result.stderr
    verify = run_cli("verify", str(result.run_dir), env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    attack = result.run_dir / "workspace" / "attack.json"
    outcome = json.loads(attack.read_text()) if attack.exists() else {}
    return result, outcome


def _sandboxed(result: CliRun) -> None:
    assert result.report is not None
    assert result.report["backend"]["sandbox"] == "bwrap"
    assert result.report["verdict"] == "pass", result.report["reasons"]


def test_remount_rw_writes_nothing_outside_the_run(tmp_path: Path, runs_dir: Path) -> None:
    host_file = Path("/var/tmp") / f"cto-escape-{uuid.uuid4().hex}"
    env = _agent(tmp_path, f"""
        r = subprocess.run(["mount", "-o", "remount,bind,rw", "/"], capture_output=True, text=True)
        record("remount", r.returncode)
        for name, target in (("host", pathlib.Path({str(host_file)!r})),
                             ("events", run_dir / "events.jsonl"),
                             ("baseline", run_dir / "baseline.git" / "HEAD"),
                             ("usr", pathlib.Path("/usr/cto-escape-{host_file.name}"))):
            try:
                with open(target, "a") as fh:
                    fh.write("escaped\\n")
                record(name, "written")
            except OSError as exc:
                record(name, f"refused: {{exc.strerror}}")
        """)
    try:
        result, outcome = _run(runs_dir, env)
        assert result.run_dir is not None
        assert outcome["remount"] != 0
        assert not host_file.exists()
        assert not Path(f"/usr/cto-escape-{host_file.name}").exists()
        assert b"escaped" not in (result.run_dir / "events.jsonl").read_bytes()
        assert b"escaped" not in (result.run_dir / "baseline.git" / "HEAD").read_bytes()
        assert all(v != "written" for v in outcome.values()), outcome
        _sandboxed(result)
    finally:
        host_file.unlink(missing_ok=True)
        Path(f"/usr/cto-escape-{host_file.name}").unlink(missing_ok=True)


def _read_attack(paths: list[str]) -> str:
    return f"""
        for target in {paths!r}:
            p = pathlib.Path(target)
            try:
                if p.is_dir():
                    record(target, "listed: " + ",".join(sorted(x.name for x in p.iterdir())))
                else:
                    record(target, "read: " + p.read_text(errors="replace"))
            except OSError as exc:
                record(target, f"refused: {{exc.strerror}}")
        """


def _assert_nothing_read(result: CliRun, outcome: dict[str, str], secrets: list[str]) -> None:
    assert outcome, "the attack did not run"
    assert all(v.startswith("refused") for v in outcome.values()), outcome
    assert result.run_dir is not None
    patch = (result.run_dir / "patch.diff").read_text(errors="replace")
    report = (result.run_dir / "report.json").read_text(errors="replace")
    for secret in secrets:
        assert secret not in patch and secret not in report
    _sandboxed(result)


def test_cannot_read_root_ssh(tmp_path: Path, runs_dir: Path) -> None:
    ssh = Path("/root/.ssh")
    created = not ssh.exists()
    ssh.mkdir(mode=0o700, exist_ok=True)
    canary = ssh / f"cto-canary-{uuid.uuid4().hex}"
    canary.write_text(secret := f"secret-{uuid.uuid4().hex}")
    try:
        result, outcome = _run(runs_dir, _agent(tmp_path, _read_attack([str(ssh), str(canary)])))
        _assert_nothing_read(result, outcome, [secret])
    finally:
        canary.unlink()
        if created:
            ssh.rmdir()


def test_cannot_read_etc_shadow(tmp_path: Path, runs_dir: Path) -> None:
    shadow = Path("/etc/shadow")
    if not shadow.exists():
        pytest.skip("no /etc/shadow on this machine")
    first = shadow.read_text().splitlines()[0]
    result, outcome = _run(runs_dir, _agent(tmp_path, _read_attack(["/etc/shadow", "/etc/gshadow"])))
    _assert_nothing_read(result, outcome, [first])


def test_cannot_read_the_harness_home_or_operator_home(tmp_path: Path, runs_dir: Path) -> None:
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    (home / "keys" / "signing.key").write_text(harness_secret := f"key-{uuid.uuid4().hex}")
    operator = tmp_path / "operator"
    operator.mkdir()
    (operator / ".netrc").write_text(operator_secret := f"netrc-{uuid.uuid4().hex}")
    env = _agent(tmp_path, _read_attack([str(home / "keys" / "signing.key"), str(home),
                                         str(operator / ".netrc"), str(operator)]), HOME=str(operator))
    result, outcome = _run(runs_dir, env)
    _assert_nothing_read(result, outcome, [harness_secret, operator_secret])


def test_cannot_read_another_run(tmp_path: Path, runs_dir: Path) -> None:
    first = run_cli("run", "--runs-dir", str(runs_dir), env=cli_env(tmp_path))
    assert first.run_dir is not None and first.report is not None
    other = first.run_dir
    (other / "workspace" / "canary.txt").write_text(secret := f"other-run-{uuid.uuid4().hex}")
    targets = [str(other / "report.json"), str(other / "events.jsonl"), str(other / "workspace" / "canary.txt"),
               str(runs_dir)]
    result, outcome = _run(runs_dir, _agent(tmp_path, _read_attack(targets)))
    assert result.run_dir is not None
    # The runs dir shows one entry: the skeleton around this run's own dirs.
    assert outcome.pop(str(runs_dir)) == f"listed: {result.run_dir.name}"
    _assert_nothing_read(result, outcome, [secret])


@pytest.fixture
def listener() -> Iterator[CountingListener]:
    server = CountingListener("0.0.0.0")
    yield server
    server.close()


def _connect_attack(address: str, port: int) -> str:
    return f"""
        try:
            with socket.create_connection(({address!r}, {port}), timeout=5) as s:
                s.sendall(b"exfiltrated")
            record("connect", "connected")
        except OSError as exc:
            record("connect", f"refused: {{exc}}")
        """


@pytest.mark.parametrize("where", ["loopback", "host-address"])
def test_cannot_reach_the_host_network(where: str, tmp_path: Path, runs_dir: Path, listener: CountingListener) -> None:
    address = "127.0.0.1" if where == "loopback" else host_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    result, outcome = _run(runs_dir, _agent(tmp_path, _connect_attack(address, listener.port)))
    assert outcome["connect"].startswith("refused"), outcome
    assert listener.hits == 0
    _sandboxed(result)


def _daemon_attack(token: str) -> str:
    return f"""
        subprocess.Popen(["setsid", "env", "-i", "/bin/sh", "-c", "sleep 300; : {token}"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
        record("daemon", "started")
        """


def _survivors(token: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and token in " ".join(proc.info["cmdline"] or ()):
            found.append(proc)
    return found


@pytest.mark.parametrize("sandbox", ["auto", "none"])
def test_a_setsid_env_i_daemon_does_not_survive(sandbox: str, tmp_path: Path, runs_dir: Path) -> None:
    token = f"cto-daemon-{uuid.uuid4().hex}"
    try:
        result, outcome = _run(runs_dir, _agent(tmp_path, _daemon_attack(token), CTO_HARNESS_SANDBOX=sandbox))
        assert outcome.get("daemon") == "started"
        assert _survivors(token) == []
        assert result.report is not None
        assert result.report["backend"]["sandbox"] == ("none" if sandbox == "none" else "bwrap")
        assert result.report["verdict"] == "pass", result.report["reasons"]
    finally:
        for proc in _survivors(token):
            proc.kill()


def test_the_run_dir_evidence_is_invisible(tmp_path: Path, runs_dir: Path) -> None:
    """The agent sees its own workspace/, task/, backend/ and nothing else of the run dir."""
    env = _agent(tmp_path, """
        record("run_dir", ",".join(sorted(p.name for p in run_dir.iterdir())))
        record("root", ",".join(sorted(p.name for p in pathlib.Path("/").iterdir())))
        record("tmp", ",".join(sorted(p.name for p in pathlib.Path("/tmp").iterdir())))
        """)
    result, outcome = _run(runs_dir, env)
    assert outcome["run_dir"].split(",") == ["backend", "task", "workspace"]
    # The host's /tmp is not shared: only the mount points of what was bound show up.
    visible = set(filter(None, outcome["tmp"].split(",")))
    host_tmp = {p.name for p in Path("/tmp").iterdir()}
    # Mount points for what was bound read-only may show too: this test's tmp dir, and the
    # interpreter/venv and harness source when the checkout itself lives under /tmp (as CI's may).
    bound = {tmp_path.parts[2]} | {
        Path(p).resolve().parts[2]
        for p in (sys.prefix, sys.base_prefix, sys.executable, cto_harness.__file__)
        if Path(p).resolve().parts[1:2] == ("tmp",) and len(Path(p).resolve().parts) > 2
    }
    assert visible <= bound and len(host_tmp) > len(visible)
    _sandboxed(result)


@pytest.mark.parametrize("sandbox", ["auto", "none"])
def test_harness_git_never_runs_the_agents_git_config(sandbox: str, tmp_path: Path, runs_dir: Path) -> None:
    """fsmonitor, a clean filter and hooks planted for the harness's own ``git add``/``diff``."""
    marker = Path("/var/tmp") / f"cto-git-pwned-{uuid.uuid4().hex}"
    env = _agent(tmp_path, f"""
        cmd = "touch {marker}"
        (workspace / ".gitattributes").write_text("* filter=evil diff=evil\\n")
        for git_dir in (run_dir / "baseline.git", workspace / ".git"):
            try:
                with open(git_dir / "config", "a") as fh:
                    fh.write(f'[core]\\n\\tfsmonitor = "{{cmd}}"\\n[filter "evil"]\\n\\tclean = {{cmd}}\\n'
                             f'[diff "evil"]\\n\\ttextconv = {{cmd}}\\n[diff]\\n\\texternal = {{cmd}}\\n')
                hook = git_dir / "hooks" / "pre-commit"
                hook.write_text("#!/bin/sh\\n" + cmd + "\\n")
                hook.chmod(0o755)
                record(git_dir.name, "planted")
            except OSError as exc:
                record(git_dir.name, f"refused: {{exc.strerror}}")
        """, CTO_HARNESS_SANDBOX=sandbox)
    try:
        result, outcome = _run(runs_dir, env)
        assert not marker.exists(), "harness-side git ran the agent's configuration"
        assert result.report is not None
        if sandbox == "none":
            assert outcome["baseline.git"] == "planted"
            assert result.report["verdict"] != "pass"
            assert any("git configuration never runs" in r for r in result.report["reasons"]), result.report
        else:
            assert outcome["baseline.git"].startswith("refused")
            assert result.report["verdict"] == "pass", result.report["reasons"]
    finally:
        marker.unlink(missing_ok=True)


def test_borrowed_baseline_objects_can_be_read_but_not_changed_or_linked(tmp_path: Path, runs_dir: Path) -> None:
    """``workspace/.git`` borrows a large blob from ``baseline.git/objects``, shown read-only in the sandbox."""
    fixture = tmp_path / "fixture-with-big-file"
    shutil.copytree(Path(cto_harness.__file__).parent / "fixtures" / "builtin" / "r1-string-slugify", fixture,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (fixture / "repo" / "big.bin").write_bytes(bytes(range(256)) * 1200)  # a loose object, above 256 KiB
    env = _agent(tmp_path, """
        objects = run_dir / "baseline.git" / "objects"
        git = ["git", "-C", str(workspace)]
        oid = subprocess.run([*git, "rev-parse", "HEAD:big.bin"], capture_output=True, text=True).stdout.strip()
        record("read", subprocess.run([*git, "cat-file", "-s", oid], capture_output=True, text=True).stdout.strip())
        target = objects / oid[:2] / oid[2:]
        attacks = {
            "append": lambda: open(target, "ab").write(b"escaped"),
            "chmod": lambda: os.chmod(target, 0o666),
            "link": lambda: os.link(target, workspace / "linked"),
            "plant": lambda: (objects / oid[:2] / ("0" * 38)).write_bytes(b"escaped"),
            "rename": lambda: os.rename(target, workspace / "moved"),
            "unlink": lambda: os.unlink(target),
            "head": lambda: (run_dir / "baseline.git" / "HEAD").read_text(),
        }
        for name, attack in attacks.items():
            try:
                attack()
                record(name, "done")
            except OSError as exc:
                record(name, f"refused: {exc.strerror}")
        """)
    result = run_cli("run", "--provider", "command", "--fixture", str(fixture), "--runs-dir", str(runs_dir), env=env)
    assert result.run_dir is not None, result.stdout + result.stderr
    verify = run_cli("verify", str(result.run_dir), env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr  # git fsck of baseline.git included
    outcome = json.loads((result.run_dir / "workspace" / "attack.json").read_text())
    assert outcome.pop("read") == str(256 * 1200), outcome  # the agent's repository is whole
    assert all(v.startswith("refused") for v in outcome.values()), outcome
    assert not (result.run_dir / "workspace" / "linked").exists()
    _sandboxed(result)
