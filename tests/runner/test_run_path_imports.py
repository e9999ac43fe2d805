"""A fake-lane run imports only what it uses: checked in a fresh interpreter through sys.modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env

NOT_ON_THE_FAKE_LANE = ("asyncio", "ssl", "cto_harness.egress._proxy", "cto_harness.egress._usage")
"""The egress proxy (asyncio, ssl) and its usage parsers serve runs with a model endpoint only."""
SIGNING = "cryptography"
"""Imported for the signature at a run's end (in the background while its tests run), not at start."""

PROGRAM = """
import json, sys
from pathlib import Path
from cto_harness.runner import RunRequest, run_stage2
result = run_stage2(RunRequest(runs_dir=Path(sys.argv[1])))
print(json.dumps({"verdict": result.report.verdict,
                  "imported": sorted(m for m in sys.argv[2:] if m in sys.modules)}))
"""


def test_a_fake_run_never_imports_the_egress_proxy(runs_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", PROGRAM, str(runs_dir), *NOT_ON_THE_FAKE_LANE],
                          env=cli_env(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout.splitlines()[-1])
    assert outcome == {"verdict": "pass", "imported": []}


def test_the_proxy_is_still_one_attribute_away() -> None:
    proc = subprocess.run([sys.executable, "-c", "import sys; from cto_harness.egress import EgressProxy, parse_usage; "
                           "print(EgressProxy.__module__, parse_usage.__module__, 'asyncio' in sys.modules)"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.stdout.split() == ["cto_harness.egress._proxy", "cto_harness.egress._usage", "True"], proc.stderr


def test_the_run_command_imports_no_signing_code_up_front() -> None:
    program = ("import sys, cto_harness.cli.run, cto_harness.runner, cto_harness.providers.fake; "
               f"print({SIGNING!r} in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False)
    assert proc.stdout.strip() == "False", proc.stderr


PLUGIN = """
import os
with open(os.environ["PLANTED_PLUGIN_MARK"], "a") as mark:
    mark.write("loaded\\n")

class Plugin:
    def new_schema_validator(self, *args, **kwargs):
        return None, None, None

plugin = Plugin()
"""


def _planted_pydantic_plugin(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose path holds a distribution with a ``pydantic`` entry point, and the
    file that plugin writes when loaded."""
    site, mark = tmp_path / "site", tmp_path / "plugin-loaded"
    site.mkdir(parents=True, exist_ok=True)
    (site / "planted_plugin.py").write_text(PLUGIN)
    meta = site / "planted_plugin-1.0.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: planted-plugin\nVersion: 1.0\n")
    (meta / "entry_points.txt").write_text("[pydantic]\nplanted = planted_plugin:plugin\n")
    return cli_env(tmp_path, PYTHONPATH=str(site), PLANTED_PLUGIN_MARK=str(mark)), mark


def test_a_run_loads_no_pydantic_plugin_and_no_package_metadata(runs_dir: Path, tmp_path: Path) -> None:
    """A pydantic plugin sees every model built and every validation: the CLI's process runs none
    (and so never scans the environment's metadata: importlib.metadata stays off the run path)."""
    env, mark = _planted_pydantic_plugin(tmp_path)
    plain = "import pydantic\nclass M(pydantic.BaseModel):\n    x: int\nM(x=1)"
    control = subprocess.run([sys.executable, "-c", plain], env=env, capture_output=True, text=True, timeout=60,
                             check=False)
    assert control.returncode == 0 and mark.read_text() == "loaded\n", control.stderr  # the plant works
    mark.unlink()
    program = ("import atexit, sys\n"
               "atexit.register(lambda: print('metadata:', 'importlib.metadata' in sys.modules, file=sys.stderr))\n"
               f"sys.argv = ['cto-harness', 'run', '--runs-dir', {str(runs_dir)!r}]\n"
               "from cto_harness.cli import main\nmain()\n")
    proc = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert "verdict:       pass" in proc.stdout
    assert not mark.exists()
    assert proc.stderr.strip().splitlines()[-1] == "metadata: False", proc.stderr


def test_a_trial_process_loads_no_pydantic_plugin(tmp_path: Path) -> None:
    """A zygote or trial started as a fresh interpreter (not forked from the CLI) is guarded too."""
    env, mark = _planted_pydantic_plugin(tmp_path)
    program = "from cto_harness.jobs import _trial\n_trial.preload()\nprint('preloaded')\n"
    proc = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "preloaded", proc.stderr
    assert not mark.exists()
