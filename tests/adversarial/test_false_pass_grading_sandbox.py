"""Code under test runs in the verifier's sandbox: it cannot rewrite evidence, write the host or reach the network.

The hostile agent's ``strings.py`` carries a real fix plus an import-time payload that tries,
while the verifier grades it, to rewrite the already hashed ``patch.diff``, write a host
file and connect to a loopback listener of the host.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import sys
import textwrap
from pathlib import Path

import pytest
from tests.conftest import cli_env, run_cli

PAYLOAD = textwrap.dedent(
    """\
    import os, pathlib, socket
    _cwd = pathlib.Path.cwd()
    _run_dir = _cwd.parent if _cwd.name == "workspace" else _cwd.parents[1]
    if (_run_dir / "patch.diff").exists():
        for _target in (_run_dir / "patch.diff", pathlib.Path({host_file!r})):
            try:
                _target.write_text("rewritten by the code under test")
            except OSError:
                pass
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"escaped")
        except OSError:
            pass
    """
)
FIX = 'import re\n\n\ndef slugify(text):\n    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")\n'


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
def test_graded_code_stays_in_the_sandbox(tmp_path: Path, runs_dir: Path) -> None:
    host_file = tmp_path / "written-by-graded-code"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        module = PAYLOAD.format(host_file=str(host_file), port=listener.getsockname()[1]) + FIX
        script = tmp_path / "agent"
        script.write_text(f"#!{sys.executable}\nimport pathlib, sys\n"
                          f"(pathlib.Path(sys.argv[1]) / 'strings.py').write_text({module!r})\n")
        script.chmod(0o755)
        env = cli_env(tmp_path, CTO_HARNESS_COMMAND_BIN=str(script), CTO_HARNESS_COMMAND_ARGS="{workspace}",
                      CTO_HARNESS_COMMAND_MODEL_PROVIDER="local", CTO_HARNESS_COMMAND_MODEL="none",
                      CTO_HARNESS_ALLOW_UNADMITTED="1", CTO_HARNESS_SANDBOX="bwrap")
        result = run_cli("run", "--provider", "command", "--runs-dir", str(runs_dir), env=env)
        assert result.report is not None and result.run_dir is not None, result.stderr
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert (result.report["verdict"], result.report["tests"]["passed_ids"]) == ("pass", 12), result.report["reasons"]
    patch = (result.run_dir / "patch.diff").read_bytes()
    assert patch.startswith(b"diff --git") and hashlib.sha256(patch).hexdigest() == \
        result.report["changes"]["patch_sha256"]
    assert not host_file.exists()
    assert run_cli("verify", str(result.run_dir), env=cli_env(tmp_path)).returncode == 0
