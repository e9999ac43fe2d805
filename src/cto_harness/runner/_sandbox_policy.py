"""What a provider may see inside the sandbox: the policy ``proc.wrap`` enforces.

Read-only: the admitted executable, what it needs to start (a launcher's pinned tree and
runtime, a script's interpreter, a toolchain's install prefix), input files named on
its command line, and ``baseline.git/objects`` when ``workspace/.git`` borrows its large
objects (alternates; they hold the fixture the workspace already has). Read-write: the run's
``workspace/``, ``task/``, ``backend/``. Hidden: the rest of the run dir (``baseline.git``'s
refs, index and marker, ``events.jsonl``, ``grading/``), the runs dir,
the harness home, the operator's home and ``/root``. ``network`` here is the fallback
without egress (cut unless the run has an admitted endpoint or passed credentials); the
runner's ``egress_policy`` replaces it with the egress plan ("proxy" or "none").
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cto_harness.proc import Network, runtime_paths
from cto_harness.providers import Gate, Invocation, RunContext
from cto_harness.supply_chain import read_launcher


@dataclass(frozen=True)
class SandboxPolicy:
    readable: list[Path]
    writable: list[Path]
    hidden: list[Path]
    network: Network
    overlaid: list[tuple[Path, Path]] = field(default_factory=list)
    """Read-only binds inside the hidden run dir (``wrap``'s ``overlaid``), for a confined sandbox."""


def provider_policy(ctx: RunContext, invocation: Invocation, gate: Gate, runs_dir: Path) -> SandboxPolicy:
    hidden = hidden_paths(ctx.run_dir, runs_dir, ctx.harness_home)
    readable: list[Path] = []
    for exe in dict.fromkeys([invocation.argv[0], *([gate.provider.executable] if gate.provider.executable else [])]):
        readable += executable_paths(Path(exe))
    readable = [p for p in readable if not _contains_hidden(p, hidden)]
    for arg in invocation.argv[1:]:
        if os.path.isabs(arg) and os.path.isfile(arg) and not _inside_hidden(Path(arg), hidden):
            readable.append(Path(arg))
    network: Network = "host" if gate.model.base_url or invocation.secrets else "none"
    return SandboxPolicy(readable=readable, writable=[ctx.workspace, ctx.task_dir, ctx.backend_dir],
                         hidden=hidden, network=network, overlaid=borrowed_objects(ctx.run_dir))


def borrowed_objects(run_dir: Path) -> list[tuple[Path, Path]]:
    """``baseline.git/objects`` at its own path, when the agent's repository borrows from it (its alternates).

    Read-only: the agent reads the large blobs its repository lacks, and can neither change
    them nor link them into the workspace (a link across mounts fails).
    """
    objects = Path(os.path.abspath(run_dir)) / "baseline.git" / "objects"
    alternates = Path(os.path.abspath(run_dir)) / "workspace" / ".git" / "objects" / "info" / "alternates"
    if alternates.is_file() and not alternates.is_symlink() and objects.is_dir() and not objects.is_symlink():
        return [(objects, objects)]
    return []


def hidden_paths(run_dir: Path, runs_dir: Path, harness_home: Path) -> list[Path]:
    home = os.environ.get("HOME")
    paths = [run_dir, runs_dir, harness_home, Path("/root"), *([Path(home)] if home else [])]
    return [Path(os.path.abspath(p)) for p in dict.fromkeys(paths) if Path(os.path.abspath(p)) != Path("/")]


def executable_paths(executable: Path) -> list[Path]:
    """The executable, its resolved file, and what it needs to start."""
    paths = [executable]
    real = Path(os.path.realpath(executable))
    paths.append(real)
    pins = read_launcher(real)
    if pins is not None:
        paths += [pins.tree, *runtime_paths(pins.runtime)]
    interpreter = _shebang(real)
    if interpreter is not None:
        paths += runtime_paths(interpreter)
    if real.name.startswith(("python", "node", "bun")):
        paths += runtime_paths(executable)
    return paths


def _shebang(path: Path) -> Path | None:
    with contextlib.suppress(OSError, UnicodeDecodeError, IndexError):
        with path.open("rb") as fh:
            head = fh.read(512)
        if head.startswith(b"#!"):
            first = head[2:].split(b"\n", 1)[0].decode().split()
            if first and first[0] != "/usr/bin/env":
                return Path(first[0])
    return None


def _contains_hidden(path: Path, hidden: Iterable[Path]) -> bool:
    """A directory that would show a hidden one (the executable-derived paths never should)."""
    path = Path(os.path.abspath(path))
    return any(h.is_relative_to(path) for h in hidden)


def _inside_hidden(path: Path, hidden: Iterable[Path]) -> bool:
    """A file named on the command line inside the run dir, runs dir, harness home or a home.

    Files the provider may read in its own run are in ``task/`` or ``workspace/`` anyway.
    """
    path = Path(os.path.abspath(path))
    return any(path.is_relative_to(h) for h in hidden)
