"""The whole admission route on a local toy provider, ending in real harness runs.

discover (file:// URL at a pin) -> build (modifies a tracked file) -> admit -> run through
the harness (pass, lane real, admission record in the report) -> flip one byte of the
admitted file -> the next run is blocked with provider-digest-mismatch and starts nothing.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from tests.conftest import cli_env, run_cli
from tests.supply_chain.conftest import git

AGENT = textwrap.dedent(
    '''\
    import pathlib, re, sys
    if "--help" in sys.argv:
        print("Usage: toy WORKSPACE")
        print("toy provider for cto-harness tests")
        sys.exit(0)
    strings = pathlib.Path(sys.argv[1]) / "strings.py"
    text = strings.read_text()
    text = text.replace('return text.strip().replace(" ", "-")',
                        'import re\\n    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")')
    strings.write_text(text)
    print("toy agent: fixed slugify")
    '''
)
BUILD = (
    "import pathlib, sys\n"
    "dist = pathlib.Path('dist'); dist.mkdir(exist_ok=True)\n"
    "exe = dist / 'toy'\n"
    "exe.write_text('#!' + sys.executable + '\\n' + pathlib.Path('agent.py').read_text())\n"
    "exe.chmod(0o755)\n"
    "gen = pathlib.Path('src/generated.txt'); gen.write_text(gen.read_text() + 'built\\n')\n"
)
CATALOG = """\
[catalog.toy]
source_url = "{url}"
pin = "{pin}"
toolchain = [{{ name = "python3" }}]
build_command = ["python3", "build.py"]
artifact = "dist/toy"
adapter = "command"

[catalog.toy.identify]
args = ["--help"]
patterns = ["toy provider", "(?m)^Usage: toy"]
"""


def _toy_repo(root: Path) -> tuple[str, str]:
    repo = root / "toy-src"
    (repo / "src").mkdir(parents=True)
    (repo / "agent.py").write_text(AGENT)
    (repo / "build.py").write_text(BUILD)
    (repo / "src" / "generated.txt").write_text("checked in\n")
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "toy", cwd=repo)
    return f"file://{repo}", git("rev-parse", "HEAD", cwd=repo)


def _events(run_dir: Path) -> list[str]:
    return [json.loads(line)["event"] for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_discover_build_admit_run_then_tamper(tmp_path: Path, runs_dir: Path) -> None:
    url, pin = _toy_repo(tmp_path)
    config = tmp_path / "cto-harness.toml"
    config.write_text(CATALOG.format(url=url, pin=pin))
    env = cli_env(tmp_path, CTO_HARNESS_CONFIG=str(config), CTO_HARNESS_TOY_ARGS="{workspace}",
                  CTO_HARNESS_TOY_MODEL_PROVIDER="local", CTO_HARNESS_TOY_MODEL="none")

    discovered = run_cli("provider", "discover", "toy", "--json", env=env)
    assert discovered.returncode == 0, discovered.stderr
    assert json.loads(discovered.stdout)["pin"] == pin
    built = run_cli("provider", "build", "toy", "--json", env=env)
    assert built.returncode == 0, built.stderr
    assert "src/generated.txt" in json.dumps(json.loads(built.stdout))
    admitted = run_cli("provider", "admit", "toy", "--json", env=env)
    assert admitted.returncode == 0, admitted.stderr
    record = json.loads(admitted.stdout)
    digest = record.get("sha256") or record.get("digest") or record["record"]["sha256"]

    passed = run_cli("run", "--provider", "toy", "--runs-dir", str(runs_dir), env=env)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.report is not None
    assert (passed.report["verdict"], passed.report["lane"]) == ("pass", "real")
    assert passed.report["provider"]["sha256"] == digest
    admission = passed.report["provider"]["admission"]
    assert admission is not None and pin in json.dumps(admission) and url in json.dumps(admission)

    stored = next((Path(env["CTO_HARNESS_HOME"]) / "admitted" / "sha256" / digest).glob("toy"))
    stored.parent.chmod(0o755)
    stored.chmod(0o755)
    data = bytearray(stored.read_bytes())
    data[-2] ^= 0x01
    stored.write_bytes(bytes(data))

    blocked = run_cli("run", "--provider", "toy", "--runs-dir", str(runs_dir), env=env)
    assert blocked.returncode == 3, blocked.stdout + blocked.stderr
    assert blocked.report is not None and blocked.run_dir is not None
    assert (blocked.report["verdict"], blocked.report["failure_class"]) == ("blocked", "provider-digest-mismatch")
    assert (blocked.run_dir / "backend" / "provider-digest-mismatch.txt").is_file()
    assert "provider_process_started" not in _events(blocked.run_dir)
    assert blocked.report["backend"]["process_started"] is False


def test_unadmitted_executable_runs_only_as_unadmitted_lane(tmp_path: Path, runs_dir: Path) -> None:
    exe = tmp_path / "toy"
    exe.write_text(f"#!{sys.executable}\n" + AGENT)
    exe.chmod(0o755)
    env = cli_env(tmp_path, CTO_HARNESS_COMMAND_BIN=str(exe), CTO_HARNESS_COMMAND_ARGS="{workspace}",
                  CTO_HARNESS_COMMAND_MODEL_PROVIDER="local", CTO_HARNESS_COMMAND_MODEL="none")
    refused = run_cli("run", "--provider", "command", "--runs-dir", str(runs_dir), env=env)
    assert refused.report is not None
    assert (refused.report["verdict"], refused.report["failure_class"]) == ("blocked", "provider-not-admitted")
    experiment = run_cli("run", "--provider", "command", "--unadmitted", "--runs-dir", str(runs_dir), env=env)
    assert experiment.report is not None
    assert (experiment.report["verdict"], experiment.report["lane"]) == ("pass", "unadmitted")
    assert experiment.report["provider"]["admission"] is None
