"""The bubblewrap sandbox keeps a provider's writes inside workspace/, task/ and backend/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import cli_env, hostile_agent_env, run_cli

from cto_harness.proc import Network, Sandbox, SandboxUnavailableError, choose_sandbox, wrap

ESCAPE = textwrap.dedent(
    """\
    import pathlib, sys
    workspace = pathlib.Path(sys.argv[1])
    run_dir = workspace.parent
    for target in (run_dir / "evil.txt", run_dir / "baseline.git" / "evil.txt", pathlib.Path("/tmp/evil-escape")):
        try:
            target.write_text("escaped")
            print("wrote", target)
        except OSError as exc:
            print("refused", target, exc.strerror)
    strings = workspace / "strings.py"
    strings.write_text(strings.read_text().replace(
        'return text.strip().replace(" ", "-")',
        'import re\\n    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")'))
    """
)

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


def _escape_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return hostile_agent_env(tmp_path, ESCAPE, **extra)


@needs_bwrap
def test_provider_cannot_write_evidence_outside_its_dirs(tmp_path: Path, runs_dir: Path) -> None:
    Path("/tmp/evil-escape").unlink(missing_ok=True)
    result = run_cli("run", "--provider", "command", "--runs-dir", str(runs_dir),
                     env=_escape_env(tmp_path, CTO_HARNESS_SANDBOX="bwrap"))
    assert result.report is not None and result.run_dir is not None
    assert (result.report["verdict"], result.report["backend"]["sandbox"]) == ("pass", "bwrap")
    assert not (result.run_dir / "evil.txt").exists()
    assert not (result.run_dir / "baseline.git" / "evil.txt").exists()
    assert not Path("/tmp/evil-escape").exists()
    assert result.run_dir is not None and run_cli("verify", str(result.run_dir), env=cli_env(tmp_path)).returncode == 0


def test_without_a_sandbox_the_report_says_so(tmp_path: Path, runs_dir: Path) -> None:
    result = run_cli("run", "--provider", "command", "--runs-dir", str(runs_dir),
                     env=_escape_env(tmp_path, CTO_HARNESS_SANDBOX="none"))
    assert result.report is not None and result.run_dir is not None
    assert result.report["backend"]["sandbox"] == "none"
    assert (result.run_dir / "evil.txt").exists(), "without bubblewrap the run dir is writable"
    Path("/tmp/evil-escape").unlink(missing_ok=True)


def test_unknown_sandbox_mode_blocks(tmp_path: Path, runs_dir: Path) -> None:
    result = run_cli("run", "--runs-dir", str(runs_dir), env=cli_env(tmp_path, CTO_HARNESS_SANDBOX="chroot"))
    assert result.report is not None
    assert (result.report["verdict"], result.report["failure_class"]) == ("blocked", "provider-unavailable")
    assert result.report["backend"]["process_started"] is False


# --- the sandbox API (proc.wrap / choose_sandbox), unit level -------------------------------

def _sandbox() -> Sandbox:
    sandbox = choose_sandbox({"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    if not sandbox.confined:
        pytest.skip("bubblewrap does not work here")
    return sandbox


def _inside(sandbox: Sandbox, script: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("writable", [])
    argv = wrap(["/bin/sh", "-c", script], sandbox, **kwargs)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@needs_bwrap
def test_wrap_drops_every_capability_and_blocks_remount() -> None:
    done = _inside(_sandbox(), "grep -E '^Cap(Eff|Prm|Amb)' /proc/self/status; "
                               "mount -o remount,bind,rw / && echo REMOUNTED")
    assert "REMOUNTED" not in done.stdout
    for line in done.stdout.splitlines():
        assert line.split()[1] == "0000000000000000", line


@needs_bwrap
def test_wrap_shows_a_minimal_filesystem(tmp_path: Path) -> None:
    readable = tmp_path / "tree"
    readable.mkdir()
    (readable / "tool").write_text("tool\n")
    done = _inside(_sandbox(), f"ls /; ls /etc; cat {readable}/tool; ls /root; touch {readable}/x || echo RO",
                   readable=[readable])
    listing = done.stdout.split()
    for secret in ("shadow", "gshadow", "sudoers", "ssh", "npmrc", "pip.conf", "gitconfig"):
        assert secret not in listing
    assert "passwd" in listing and "tool" in listing and "RO" in listing
    assert not {"home", "var", "srv", "opt", "mnt"} & set(listing)


@needs_bwrap
def test_hidden_paths_are_masked_even_inside_a_readable_dir(tmp_path: Path) -> None:
    (tmp_path / "runs" / "other").mkdir(parents=True)
    (tmp_path / "runs" / "other" / "report.json").write_text("other run")
    (tmp_path / "home" / "providers" / "x").mkdir(parents=True)
    (tmp_path / "home" / "providers" / "x" / "bin").write_text("provider tree")
    (tmp_path / "home" / "key").write_text("signing key")
    done = _inside(_sandbox(), f"cat {tmp_path}/runs/other/report.json {tmp_path}/home/key; "
                               f"cat {tmp_path}/home/providers/x/bin",
                   readable=[tmp_path, tmp_path / "home" / "providers" / "x"],
                   hidden=[tmp_path / "runs", tmp_path / "home"])
    assert "other run" not in done.stdout and "signing key" not in done.stdout
    assert "provider tree" in done.stdout


@needs_bwrap
def test_the_run_dir_is_a_read_only_skeleton(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "run-1"
    for name in ("workspace", "task", "backend", "baseline.git"):
        (run / name).mkdir(parents=True)
    (run / "events.jsonl").write_text("chain\n")
    done = _inside(_sandbox(), f"ls {run}; touch {run}/evil || echo SEALED; touch {run}/workspace/ok",
                   writable=[run / "workspace", run / "task", run / "backend"], hidden=[run, tmp_path / "runs"])
    assert done.stdout.split() == ["backend", "task", "workspace", "SEALED"]
    assert (run / "workspace" / "ok").exists() and not (run / "evil").exists()


@needs_bwrap
@pytest.mark.parametrize("network", ["none", "host"])
def test_network_none_is_loopback_only(network: Network) -> None:
    done = _inside(_sandbox(), "cat /proc/net/dev", network=network)
    interfaces = {line.split(":")[0].strip() for line in done.stdout.splitlines()[2:]}
    if network == "none":
        assert interfaces == {"lo"}
    else:
        assert interfaces == {line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]}


def test_without_a_sandbox_wrap_changes_nothing() -> None:
    assert wrap(["a", "b"], Sandbox("none", "off"), writable=[Path("/x")]) == ["a", "b"]
    with pytest.raises(ValueError, match="network"):
        wrap(["a"], Sandbox("bwrap", "on", bwrap="/usr/bin/bwrap"), writable=[],
             network="carrier-pigeon")  # type: ignore[arg-type]


def test_a_required_sandbox_without_bubblewrap_names_the_fix(tmp_path: Path) -> None:
    environ = {"PATH": str(tmp_path)}
    assert choose_sandbox(environ).kind == "none"
    assert "apt-get install bubblewrap" in choose_sandbox(environ).reason
    with pytest.raises(SandboxUnavailableError, match="apt-get install bubblewrap"):
        choose_sandbox(environ, required=True)
    assert choose_sandbox({**environ, "CTO_HARNESS_SANDBOX": "none"}, required=True).kind == "none"


def _bin_without_bwrap(tmp_path: Path) -> str:
    """A PATH holding git and a shell but no bwrap."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "sh", "env"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_a_real_lane_run_without_bubblewrap_is_blocked(tmp_path: Path, runs_dir: Path) -> None:
    env = _escape_env(tmp_path, PATH=_bin_without_bwrap(tmp_path))
    result = run_cli("run", "--provider", "command", "--runs-dir", str(runs_dir), env=env)
    assert result.report is not None
    assert (result.report["verdict"], result.report["failure_class"]) == ("blocked", "provider-unavailable")
    assert "apt-get install bubblewrap" in result.report["reasons"][0]
    assert result.report["backend"]["process_started"] is False


def test_the_fake_lane_runs_without_bubblewrap_and_says_so(tmp_path: Path, runs_dir: Path) -> None:
    env = cli_env(tmp_path, PATH=_bin_without_bwrap(tmp_path))
    result = run_cli("run", "--runs-dir", str(runs_dir), env=env)
    assert result.report is not None and result.run_dir is not None
    assert (result.report["verdict"], result.report["backend"]["sandbox"]) == ("pass", "none")
    assert "sandbox:       NONE" in result.stdout
    assert any(r.startswith("NO SANDBOX") and "apt-get install bubblewrap" in r for r in result.report["reasons"])
    verify = run_cli("verify", str(result.run_dir), env=env)
    assert verify.returncode == 0 and "WITHOUT a sandbox" in verify.stderr


@needs_bwrap
def test_bubblewrap_is_probed_once_and_leaves_no_zombie(tmp_path: Path) -> None:
    """Probe once per binary + kernel, and reap bwrap's pid 1 (we are its subreaper)."""
    code = textwrap.dedent("""\
        import json, os, time, psutil
        from pathlib import Path
        from cto_harness.proc import _sandbox, choose_sandbox, enable_subreaper, run_captured, wrap
        enable_subreaper()
        calls = []
        original = _sandbox._run_probe
        _sandbox._run_probe = lambda b: calls.append(b) or original(b)
        for _ in range(3):
            sandbox = choose_sandbox(os.environ)
            run_captured(wrap(["/bin/true"], sandbox, writable=[]), cwd=Path("/"), env={}, timeout_s=30)
        zombies = [c.pid for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]
        print(json.dumps({"probes": len(calls), "zombies": zombies, "kind": sandbox.kind}))
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          env=cli_env(tmp_path))
    assert json.loads(done.stdout) == {"probes": 1, "zombies": [], "kind": "bwrap"}


PROBE_COUNT = textwrap.dedent("""\
    import json, os
    from cto_harness.proc import _sandbox, choose_sandbox, enable_subreaper
    enable_subreaper()
    calls = []
    original = _sandbox._run_probe
    _sandbox._run_probe = lambda b: calls.append(b) or original(b)
    sandbox = choose_sandbox(os.environ)
    print(json.dumps({"probes": len(calls), "kind": sandbox.kind, "userns": sandbox.userns,
                      "nested_userns_disabled": sandbox.nested_userns_disabled}))
    """)


def _probe_in_a_new_process(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", PROBE_COUNT], capture_output=True, text=True, timeout=120,
                          check=True, env=env)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@needs_bwrap
def test_the_strongest_probe_is_kept_for_the_next_process(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    first = _probe_in_a_new_process(env)
    if not (first["userns"] and first["nested_userns_disabled"]):
        pytest.skip("bubblewrap here cannot use the strongest confinement (nothing is cached)")
    second = _probe_in_a_new_process(env)
    assert (first["probes"], second["probes"]) == (1, 0)
    assert second == {**first, "probes": 0}
    cache = tmp_path / "home" / "cache" / "bwrap-probe.json"
    cache.write_text(cache.read_text().replace('"strongest"', '"weaker"'))
    assert _probe_in_a_new_process(env)["probes"] == 1  # an entry it did not write is probed again


def test_a_weaker_or_failed_probe_is_probed_every_time(tmp_path: Path) -> None:
    """A fake bwrap that refuses --disable-userns (an old bubblewrap): works, but is never cached."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    fake = bin_dir / "bwrap"
    fake.write_text(f"#!/bin/sh\necho x >> {log}\ncase \"$*\" in *--disable-userns*) exit 1;; esac\nexit 0\n")
    fake.chmod(0o755)
    env = cli_env(tmp_path, PATH=f"{bin_dir}:{os.environ['PATH']}")
    first, second = _probe_in_a_new_process(env), _probe_in_a_new_process(env)
    assert first == second == {"probes": 1, "kind": "bwrap", "userns": True, "nested_userns_disabled": False}
    assert not (tmp_path / "home" / "cache" / "bwrap-probe.json").exists()
    fake.write_text("#!/bin/sh\nexit 1\n")
    assert _probe_in_a_new_process(env)["kind"] == "none"


@needs_bwrap
def test_no_user_namespace_can_be_created_inside() -> None:
    """Nested user namespaces (kernel attack surface, a way to regain capabilities) are disabled."""
    sandbox = _sandbox()
    if not sandbox.nested_userns_disabled:
        pytest.skip("this bubblewrap or kernel cannot disable nested user namespaces")
    done = _inside(sandbox, "unshare -U true && echo NESTED")
    assert "NESTED" not in done.stdout


def test_overlaid_binds_refuse_an_unconfined_sandbox(tmp_path: Path) -> None:
    """A shared read-only subtree is only read-only inside bwrap: without it there is nothing to bind."""
    with pytest.raises(ValueError, match="confined"):
        wrap(["true"], Sandbox("none", "test"), writable=[tmp_path], overlaid=[(tmp_path, tmp_path / "x")])
