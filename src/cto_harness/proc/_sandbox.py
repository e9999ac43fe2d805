"""Filesystem sandbox for provider processes (bubblewrap), so evidence stays out of reach.

Without it a provider could rewrite ``baseline.git``, ``events.jsonl`` or anything else
the harness will later vouch for. Inside the sandbox the whole filesystem is read-only
except the run's ``workspace/``, ``task/`` and ``backend/`` dirs; ``TMPDIR`` points into
``backend/tmp``. The network is left alone (clients talk to loopback model servers). The
sandboxed process gets its own pid namespace and dies with the harness, so a provider
that daemonises cannot outlive its run.

``CTO_HARNESS_SANDBOX``: ``auto`` (default: bubblewrap when it works here, else none),
``bwrap`` (required: a run without it is blocked), ``none``.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MODES = ("auto", "bwrap", "none")


class SandboxUnavailableError(RuntimeError):
    """The operator required a sandbox this machine cannot provide."""


@dataclass(frozen=True)
class Sandbox:
    kind: str
    """"bwrap" or "none"."""
    reason: str


@functools.cache
def _bwrap_works(bwrap: str) -> bool:
    from cto_harness.proc._run import run_captured

    try:
        probe = run_captured(
            [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid",
             "--die-with-parent", "--", "/bin/true"],
            cwd=Path("/"), env={"PATH": "/usr/bin:/bin"}, timeout_s=10,
        )
    except OSError:
        return False
    return probe.ok


def choose_sandbox(environ: Mapping[str, str]) -> Sandbox:
    """Decide per run which sandbox wraps the provider.

    Raises:
        SandboxUnavailableError: ``CTO_HARNESS_SANDBOX=bwrap`` but bubblewrap does not work,
            or the value is not one of ``MODES``.
    """
    mode = (environ.get("CTO_HARNESS_SANDBOX") or "auto").strip().lower()
    if mode not in MODES:
        raise SandboxUnavailableError(f"CTO_HARNESS_SANDBOX={mode!r}; valid: {', '.join(MODES)}")
    if mode == "none":
        return Sandbox("none", "disabled by CTO_HARNESS_SANDBOX=none")
    bwrap = shutil.which("bwrap", path=environ.get("PATH"))
    if bwrap and _bwrap_works(bwrap):
        return Sandbox("bwrap", f"bubblewrap ({bwrap}): read-only filesystem except workspace/, task/, backend/")
    if mode == "bwrap":
        raise SandboxUnavailableError("CTO_HARNESS_SANDBOX=bwrap but bubblewrap is missing or does not work here")
    return Sandbox("none", "bubblewrap not available (install it to protect the run dir from the provider)")


def wrap(argv: Sequence[str], sandbox: Sandbox, *, writable: Sequence[Path]) -> list[str]:
    """The argv that runs ``argv`` inside ``sandbox`` with ``writable`` dirs bound read-write."""
    if sandbox.kind == "none":
        return list(argv)
    bwrap = shutil.which("bwrap") or "bwrap"
    wrapped = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
               "--unshare-pid", "--die-with-parent", "--new-session"]
    for path in writable:
        wrapped += ["--bind", str(path), str(path)]
    # bwrap always exports PWD; drop it so the child sees exactly the allowlisted environment.
    return [*wrapped, "--", shutil.which("env") or "/usr/bin/env", "-u", "PWD", *argv]
