"""Find installed real clients and run scenarios in a loopback-only network namespace."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DRIVER = Path(__file__).resolve().parent / "clients_driver.py"


def clients_home() -> Path:
    """``CTO_HARNESS_CLIENTS_HOME``, else the home ``.ci/install-clients.sh`` installs into."""
    explicit = os.environ.get("CTO_HARNESS_CLIENTS_HOME")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("CTO_HARNESS_CLIENT_CACHE") or str(Path.home() / ".cache" / "cto-harness-clients")
    return Path(cache) / "home"


def require_client(name: str) -> Path:
    """The harness home holding an admitted ``name``; skip the test when there is none.

    With ``CTO_HARNESS_REQUIRE_CLIENTS=1`` (set by CI after a successful install) a missing
    client fails the test instead: CI must show the real clients passing, not skipping.
    """
    from cto_harness.supply_chain import active_admissions

    home = clients_home()
    if not active_admissions(home, name):
        message = (f"{name} is not installed in {home} (run .ci/install-clients.sh or "
                   f"`cto-harness provider install {name}`; or set CTO_HARNESS_CLIENTS_HOME)")
        if os.environ.get("CTO_HARNESS_REQUIRE_CLIENTS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return home


@functools.cache
def netns_available() -> bool:
    """True when ``unshare -rn`` can make a loopback-only network namespace here."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    proc = subprocess.run(["unshare", "-rn", "sh", "-c", "ip link set lo up"], capture_output=True, timeout=20,
                          check=False)
    return proc.returncode == 0


def client_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTO_HARNESS_")}
    env["CTO_HARNESS_HOME"] = str(home)
    env["CTO_HARNESS_CONFIG"] = os.devnull
    return env


def run_driver(mode: str, client: str, home: Path, runs_dir: Path) -> dict[str, Any]:
    """Run ``clients_driver.py`` (in a loopback-only namespace when possible); its JSON."""
    argv = [sys.executable, str(DRIVER), mode, client, str(runs_dir)]
    if netns_available():
        argv = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, env=client_env(home), timeout=900, check=False)
    assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result
