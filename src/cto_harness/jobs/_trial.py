"""One trial in its own process: ``main([REQUEST_JSON])``.

A trial is exactly one Stage 2 run. The local executor runs ``main`` in a child forked by a
zygote (``cto_harness.proc.Zygote``) that imported this module and ran ``preload`` once;
``python -m cto_harness.jobs._trial REQUEST_JSON`` runs the same code in a fresh interpreter.
It runs in a child process (not a thread of the coordinator) because ``run_stage2`` relies
on process-wide state: SIGTERM/SIGINT raise ``HarnessInterrupted`` only in the main thread,
and the process is the subreaper of its provider. The child dies with its parent
(PR_SET_PDEATHSIG → SIGTERM → an ``interrupted`` report), so a SIGKILLed coordinator (or
zygote) leaves no trial running on unsupervised.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> bool:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    return os.getppid() == parent_pid


def preload() -> None:
    """Import what a trial will need (the zygote calls this once, before it forks trials)."""
    import encodings.ascii  # noqa: F401  # a trial decodes some tool output as ASCII

    import cryptography.hazmat.primitives.asymmetric.ed25519  # the report's signer
    import cryptography.hazmat.primitives.serialization  # noqa: F401
    import platformdirs  # noqa: F401  # harness_home() imports it on first use (~10 ms of each trial's CPU)

    from cto_harness.core import ConfigError  # noqa: F401
    from cto_harness.evidence import Report, verify_run  # noqa: F401
    from cto_harness.fixtures import UnknownFixtureError, load_fixture  # noqa: F401
    from cto_harness.proc import (  # noqa: F401
        HarnessInterrupted,
        enable_subreaper,
        install_signal_handlers,
        warm_sandbox_paths,
    )
    from cto_harness.providers import RunOptions, UnknownProviderError, get_provider  # noqa: F401
    from cto_harness.providers.fake import FakeProvider  # noqa: F401
    from cto_harness.runner import RunRequest, recover_run, run_stage2  # noqa: F401

    warm_sandbox_paths()  # the interpreter's and /etc's binds, inherited by every trial


def main(argv: list[str]) -> int:
    from cto_harness.core import ConfigError
    from cto_harness.fixtures import UnknownFixtureError
    from cto_harness.proc import HarnessInterrupted, enable_subreaper, install_signal_handlers
    from cto_harness.providers import RunOptions, UnknownProviderError
    from cto_harness.runner import RunRequest, run_stage2

    request = json.loads(argv[0])
    restore = install_signal_handlers()
    try:
        if not _die_with_parent(int(request["parent_pid"])):
            print("trial: the coordinator is gone; not starting", file=sys.stderr)
            return 4
        enable_subreaper()
        run_dir = Path(request["run_dir"])
        run_stage2(RunRequest(
            provider=request["provider"],
            fixture=request["fixture"],
            runs_dir=run_dir.parent,
            run_dir=run_dir,
            options=RunOptions(**request["options"]),
            environ=dict(os.environ),
            recover=False,
        ))
    except HarnessInterrupted as exc:
        print(f"trial: interrupted by {exc.signame} before the run dir existed", file=sys.stderr)
        return 4
    except (UnknownFixtureError, UnknownProviderError, ConfigError) as exc:
        print(f"trial: {exc}", file=sys.stderr)
        return 2
    finally:
        restore()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
