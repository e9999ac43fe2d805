"""A grading sandbox started before it is needed: Python and pytest imported, waiting.

Starting the verifier's sandbox, interpreter and pytest costs more than a small fixture's
tests. Started at the top of a run, that work overlaps the harness's own start-up and the
agent. The sandbox is the cold path's exactly (same binds, same environment, no network,
same command); it waits for one line (its pytest arguments) on stdin before it reads
anything of the graded copy, which the verifier writes into its bound ``tree/`` only after
the agent is gone. Its scratch dir is under the harness home, which no provider sandbox
shows. Anything unusual (no confined sandbox, the held process died, other binds needed)
means the cold path, never a different verdict.

This module stays light (no pydantic): the CLI starts a grader before its own imports.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import secrets
import socket
import stat
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cto_harness._tree import remove_tree
from cto_harness.core import harness_home
from cto_harness.proc import Held, ProcessResult, Sandbox, choose_sandbox, hold_bounded, runtime_paths, wrap
from cto_harness.runner._verifier_plugin import CHANNEL_ENV, HELD_FLAG

PLUGIN_SCRIPT = Path(__file__).resolve().with_name("_verifier_plugin.py")
SCRATCH_DIR = "scratch"
"""Under the harness home: ``grading-<host key>-<pid>-<token>/{tree,tmp}`` of each held grader."""
FOREIGN_SCRATCH_MAX_AGE_S = 7 * 24 * 3600


@dataclass
class HeldGrader:
    """One waiting grading sandbox; ``close`` it when done (idempotent)."""

    sandbox: Sandbox
    scratch: Path
    shared: tuple[tuple[Path, str], ...] = ()
    """``(fixture repo dir, relative path)`` bound read-only over placeholders in ``tree``."""
    held: Held | None = field(default=None, repr=False)

    @property
    def tree(self) -> Path:
        return self.scratch / "tree"

    @property
    def tmp(self) -> Path:
        return self.scratch / "tmp"

    @property
    def channel(self) -> Path:
        return self.tmp / "results.jsonl"

    def fits(self, sandbox: Sandbox, repo_dir: Path, shared: Sequence[str]) -> bool:
        """True when it was started for this sandbox and these shared subtrees, and still waits."""
        return (self.held is not None and self.held.alive() and self.sandbox == sandbox
                and self.shared == tuple((repo_dir, rel) for rel in shared))

    def pristine(self) -> bool:
        """``tree`` holds only the (empty) placeholders and ``tmp`` nothing: what ``hold_grader`` made.

        Only the harness reaches the scratch dir (the harness home is hidden from provider
        sandboxes); a directory listing keeps it that way for grading.
        """
        placeholders = {rel for _, rel in self.shared}
        above = {parent.as_posix() for rel in placeholders for parent in PurePosixPath(rel).parents} - {"."}
        try:
            if os.listdir(self.tmp):
                return False
            for directory, dirnames, filenames in os.walk(self.tree):
                for name in (*dirnames, *filenames):
                    path = os.path.join(directory, name)
                    rel = Path(path).relative_to(self.tree).as_posix()
                    mode = os.lstat(path).st_mode
                    if rel in placeholders and stat.S_ISDIR(mode):
                        dirnames.remove(name)
                        if os.listdir(path):
                            return False
                    elif rel in placeholders and stat.S_ISREG(mode):
                        if os.lstat(path).st_size:
                            return False
                    elif not (rel in above and stat.S_ISDIR(mode)):
                        return False
        except OSError:
            return False
        return True

    def release(self, argv: Sequence[str], *, timeout_s: float, stdout_path: Path, stderr_path: Path,
                max_output_bytes: int) -> ProcessResult:
        """Run pytest with ``argv`` (``ROOT PYTEST_ARGS...``) on the tree written meanwhile."""
        if self.held is None:
            raise ValueError("this grader was closed")
        line = (json.dumps({"argv": list(argv)}) + "\n").encode()
        held, self.held = self.held, None
        return held.release(line, timeout_s=timeout_s, stdout_path=stdout_path, stderr_path=stderr_path,
                            max_output_bytes=max_output_bytes)

    def close(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            held.discard()
        remove_tree(self.scratch)


def grading_env(tmp: Path, channel: Path) -> dict[str, str]:
    """The test command's environment: an allowlist, never the caller's whole environment."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        CHANNEL_ENV: str(channel),
    }


def grading_binds(tree: Path, tmp: Path) -> dict[str, list[Path]]:
    """The verifier sandbox's writable and readable paths (held and cold alike)."""
    return {"writable": [tree, tmp], "readable": [*runtime_paths(), PLUGIN_SCRIPT]}


def hold_grader(environ: Mapping[str, str], *, sandbox: Sandbox | None = None,
                shared: Sequence[tuple[Path, str]] = (), tag: str | None = None) -> HeldGrader | None:
    """Start a grading sandbox now, or None (no confined sandbox here, or it could not start).

    ``shared`` names the fixture subtrees the verifier will bind read-only over
    placeholders (``fixtures.copy_repo_sharing``): binds are fixed when the sandbox starts.
    """
    try:
        sandbox = sandbox or choose_sandbox(environ)
    except Exception:  # an unusable sandbox setting: the run itself says so
        return None
    if not sandbox.confined:
        return None
    scratch: Path | None = None
    try:
        root = harness_home(environ) / SCRATCH_DIR
        _sweep(root)
        scratch = root / f"grading-{_host_key()}-{os.getpid()}-{secrets.token_hex(6)}"
        grader = HeldGrader(sandbox=sandbox, scratch=scratch, shared=tuple(shared))
        for directory in (grader.tree, grader.tmp):
            directory.mkdir(parents=True, mode=0o700)
        for repo_dir, rel in grader.shared:
            placeholder = grader.tree / rel
            placeholder.parent.mkdir(parents=True, exist_ok=True)
            if (repo_dir / rel).is_dir():
                placeholder.mkdir()
            else:
                os.close(os.open(placeholder, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o444))
        argv = [sys.executable, "-I", "-B", str(PLUGIN_SCRIPT), HELD_FLAG]
        grader.held = hold_bounded(
            wrap(argv, sandbox, **grading_binds(grader.tree, grader.tmp), network="none", cwd=grader.tree,
                 overlaid=[(repo_dir / rel, grader.tree / rel) for repo_dir, rel in grader.shared]),
            cwd=grader.tree, env=grading_env(grader.tmp, grader.channel), tag=tag or scratch.name)
        return grader
    except Exception:  # the cold path grades exactly the same, only later
        if scratch is not None:
            remove_tree(scratch)
        return None


def _sweep(root: Path) -> None:
    """Remove scratch dirs whose harness process is gone (a SIGKILLed run leaves its own).

    A home may be shared (containers, hosts): a pid means something only in the pid
    namespace that wrote it, so another one's dirs go only when a week old.
    """
    mine = _host_key()
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            parts = entry.name.split("-")
            if len(parts) != 4 or parts[0] != "grading" or not parts[2].isdigit():
                continue
            if parts[1] == mine:
                stale = not _pid_alive(int(parts[2]))
            else:
                stale = time.time() - entry.stat(follow_symlinks=False).st_mtime > FOREIGN_SCRATCH_MAX_AGE_S
            if stale:
                remove_tree(Path(entry.path))


@functools.cache
def _host_key() -> str:
    """This host, boot and pid namespace, in 12 hex digits."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
