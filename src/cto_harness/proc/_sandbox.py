"""The provider and grading sandbox (bubblewrap): no capabilities, a minimal view, no network.

The process inside is hostile (an LLM agent running arbitrary code) and the harness runs
as root. bubblewrap run by root keeps every capability unless told otherwise, so a
"read-only" bind of ``/`` is remountable read-write; and a bind of ``/`` is not
confidential (``/root/.ssh``, ``/etc/shadow``, the harness home, other runs). ``wrap``
therefore builds the view from nothing:

- every capability dropped (``--cap-drop ALL``; bubblewrap also sets no-new-privileges),
  a new user namespace where the kernel allows one, new pid, ipc, uts and cgroup
  namespaces, a new session, killed with its parent;
- the root is an empty tmpfs, remounted read-only; system dirs (``/usr`` and the
  ``/bin``, ``/lib*``, ``/sbin`` links) and an allowlist of ``/etc`` entries are bound
  read-only (never ``shadow``, ``ssh/``, ``ssl/private``, ``sudoers``, registry configs);
- ``readable`` paths (the provider's admitted tree, its runtime) read-only, ``writable``
  paths (the run's ``workspace/``, ``task/``, ``backend/``) read-write, a private ``/tmp``;
  ``hidden`` paths are never visible even when a readable bind contains them;
- ``network="none"``: a new network namespace holding only loopback; ``"proxy"``: the same,
  its one exit being the egress proxy's Unix socket (see ``cto_harness.egress``); ``"host"``
  keeps the host's network (only when the operator disabled the sandbox's network isolation).

``CTO_HARNESS_SANDBOX``: ``auto`` (default: bubblewrap when it works here; a real-lane run
is blocked without it), ``bwrap`` (required for every run), ``none`` (the operator's
explicit choice to run unconfined; reports say so).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cto_harness.core import harness_home

MODES = ("auto", "bwrap", "none")
Network = Literal["none", "host", "proxy"]
NETWORKS: tuple[Network, ...] = ("none", "host", "proxy")
INSTALL_HINT = "install it: apt-get install bubblewrap"

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
"""Bound read-only (or recreated as the same symlink when they are links into /usr)."""
ETC_ALLOWLIST = (
    "alternatives", "bash.bashrc", "ca-certificates", "ca-certificates.conf", "debian_version",
    "gai.conf", "group", "host.conf", "hostname", "hosts", "inputrc", "ld.so.cache", "ld.so.conf",
    "ld.so.conf.d", "locale.alias", "localtime", "magic", "magic.mime", "mime.types", "networks",
    "nsswitch.conf", "os-release", "passwd", "protocols", "python3", f"python3.{sys.version_info.minor}",
    "resolv.conf", "services", "shells", "ssl/certs", "ssl/openssl.cnf", "terminfo", "timezone",
)
"""What a toolchain needs from /etc. Never: shadow, gshadow, ssh/, ssl/private, sudoers,
npmrc/pip.conf (registry tokens), gitconfig (git configuration that runs commands)."""


class SandboxUnavailableError(RuntimeError):
    """A sandbox is required for this run and this machine cannot provide it."""


@dataclass(frozen=True)
class Sandbox:
    kind: str
    """"bwrap" or "none"."""
    reason: str
    bwrap: str | None = None
    """The bubblewrap binary that passed the probe."""
    userns: bool = False
    """``--unshare-user`` works here (as root it can fail in containers; caps are dropped anyway)."""
    nested_userns_disabled: bool = False
    """``--disable-userns`` works here: no user namespace can be created inside (bubblewrap >= 0.8)."""

    @property
    def confined(self) -> bool:
        return self.kind == "bwrap"


@dataclass(frozen=True)
class _Probe:
    ok: bool
    userns: bool
    detail: str
    disable_userns: bool = False


_ProbeKey = tuple[str | int, ...]
_PROBES: dict[_ProbeKey, _Probe] = {}
_PROBE_LOCK = threading.Lock()
PROBE_CACHE_FILE = "bwrap-probe.json"
"""Under ``<harness home>/cache``: the last probe that passed with the strongest confinement."""
PROBE_CACHE_MAX_AGE_S = 24 * 3600.0
_USERNS_SYSCTLS = ("/proc/sys/kernel/unprivileged_userns_clone", "/proc/sys/user/max_user_namespaces",
                   "/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
"""Settings that decide whether a user namespace can be created: part of the probe's key."""


def _probe_key(bwrap: str) -> _ProbeKey | None:
    try:
        st = os.stat(bwrap)
    except OSError:
        return None
    uname = os.uname()
    sysctls = []
    for path in _USERNS_SYSCTLS:
        try:
            with open(path, encoding="ascii") as setting:
                sysctls.append(setting.read().strip())
        except (OSError, ValueError):
            sysctls.append("-")
    return (os.path.realpath(bwrap), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
            f"{uname.release} {uname.version}", os.geteuid(), *sysctls)


def probe_bwrap(bwrap: str, cache_dir: Path | None = None) -> _Probe:
    """Whether the confinement ``wrap`` builds works here; probed once per binary + kernel.

    Tries with a new user namespace first, then without (a container may forbid it). With
    ``cache_dir`` (the harness home's ``cache/``), a probe that passed with the strongest
    confinement (new user namespace, nested ones disabled) is kept there for a day, keyed
    by the binary, the kernel, the uid and the user-namespace sysctls: another process
    of the harness skips the probe's spawn. Nothing weaker is ever cached, so a stale
    entry can only make a sandboxed spawn fail (fail closed), never confine less.
    """
    key = _probe_key(bwrap)
    if key is None:
        return _Probe(False, False, f"{bwrap}: not found")
    with _PROBE_LOCK:
        cached = _PROBES.get(key) or _read_probe_cache(cache_dir, key)
        if cached is None:
            cached = _run_probe(bwrap)
            if _strongest(cached):
                _write_probe_cache(cache_dir, key)
        _PROBES[key] = cached
        return cached


def _strongest(probe: _Probe) -> bool:
    return probe.ok and probe.userns and probe.disable_userns


def _read_probe_cache(cache_dir: Path | None, key: _ProbeKey) -> _Probe | None:
    if cache_dir is None:
        return None
    path = cache_dir / PROBE_CACHE_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as cache:
            if time.time() - os.fstat(cache.fileno()).st_mtime > PROBE_CACHE_MAX_AGE_S:
                return None
            entry = json.loads(cache.read(4096))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != list(key) or entry.get("probe") != "strongest":
        return None
    return _Probe(True, True, "", disable_userns=True)


def _write_probe_cache(cache_dir: Path | None, key: _ProbeKey) -> None:
    if cache_dir is None:
        return
    with contextlib.suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".bwrap-probe.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"key": list(key), "probe": "strongest"}, out)
            os.replace(tmp, cache_dir / PROBE_CACHE_FILE)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _run_probe(bwrap: str) -> _Probe:
    from cto_harness.proc._bounded import SpawnError
    from cto_harness.proc._run import run_captured

    detail = ""
    for userns, disable in ((True, True), (True, False), (False, False)):
        argv = _bwrap_argv(bwrap, userns=userns, network="none", readable=(), writable=(), hidden=(), cwd=None,
                           disable_userns=disable)
        try:
            probe = run_captured([*argv, "/bin/sh", "-c", "exit 0"], cwd=Path("/"),
                                 env={"PATH": "/usr/bin:/bin"}, timeout_s=10)
        except (OSError, SpawnError) as exc:
            return _Probe(False, False, str(exc))
        if probe.ok:
            return _Probe(True, userns, "", disable_userns=disable)
        lines = probe.text("stderr").strip().splitlines()
        detail = lines[-1] if lines else f"exit status {probe.returncode}"
    return _Probe(False, False, detail)


def choose_sandbox(environ: Mapping[str, str], *, required: bool = False) -> Sandbox:
    """Decide per run which sandbox wraps the provider (and grading).

    Args:
        environ: Where ``CTO_HARNESS_SANDBOX`` and ``PATH`` come from.
        required: The run must be confined unless the operator chose ``none`` explicitly
            (real providers); without it ``auto`` falls back to ``none`` (the fake lane).

    Raises:
        SandboxUnavailableError: a sandbox is required (``bwrap`` mode, or ``required`` in
            ``auto`` mode) but bubblewrap is missing or fails here, or the mode is unknown.
    """
    mode = (environ.get("CTO_HARNESS_SANDBOX") or "auto").strip().lower()
    if mode not in MODES:
        raise SandboxUnavailableError(f"CTO_HARNESS_SANDBOX={mode!r}; valid: {', '.join(MODES)}")
    if mode == "none":
        return Sandbox("none", "disabled by CTO_HARNESS_SANDBOX=none: the provider ran unconfined "
                               "(it could read and write anything the harness user can, and reach the network)")
    bwrap = shutil.which("bwrap", path=environ.get("PATH"))
    if bwrap is None:
        problem = "bubblewrap (bwrap) is not installed"
    else:
        probe = probe_bwrap(bwrap, cache_dir=harness_home(environ) / "cache")
        if probe.ok:
            userns = "user namespace, " if probe.userns else ""
            return Sandbox("bwrap", f"bubblewrap ({bwrap}): no capabilities, {userns}own pid/ipc/uts namespaces, "
                                    "minimal read-only view, writable workspace/task/backend only",
                           bwrap=bwrap, userns=probe.userns, nested_userns_disabled=probe.disable_userns)
        problem = f"bubblewrap ({bwrap}) does not work here: {probe.detail}"
    if mode == "bwrap" or required:
        why = "CTO_HARNESS_SANDBOX=bwrap" if mode == "bwrap" else "real providers run only inside the sandbox"
        raise SandboxUnavailableError(f"{why}, but {problem}; {INSTALL_HINT} "
                                      "(or set CTO_HARNESS_SANDBOX=none to run unconfined, at your own risk)")
    return Sandbox("none", f"{problem}: the provider ran unconfined ({INSTALL_HINT})")


def wrap(
    argv: Sequence[str],
    sandbox: Sandbox,
    *,
    writable: Sequence[Path],
    readable: Sequence[Path] = (),
    hidden: Sequence[Path] = (),
    network: Network = "none",
    cwd: Path | None = None,
    overlaid: Sequence[tuple[Path, Path]] = (),
) -> list[str]:
    """The argv that runs ``argv`` inside ``sandbox``.

    Args:
        argv: The command, as it would run unconfined.
        sandbox: From ``choose_sandbox``; kind ``none`` returns ``argv`` unchanged.
        writable: Bound read-write at the same path (must exist).
        readable: Bound read-only at the same path (missing ones are skipped): the
            provider's admitted tree, its runtime (see ``runtime_paths``), input files.
        hidden: Never visible: readable entries at or under them are dropped, and where a
            readable entry contains one it is masked with an empty tmpfs. ``writable``
            entries are bound after the masks (a run's ``workspace/`` inside a hidden run dir).
        network: ``none`` (only loopback), ``host``, or ``proxy``: only loopback too, where the
            egress forwarder relays to the harness's proxy over a Unix socket among ``readable``.
        cwd: Working directory inside the sandbox (default: the caller's).
        overlaid: ``(source, destination)`` pairs bound read-only after ``writable``: a host
            path shown at a destination inside a writable dir (the verifier's copy shares a
            fixture's large untouched subtrees this way). Needs a confined sandbox.

    Raises:
        ValueError: an unknown ``network``, or ``overlaid`` without a confined sandbox.
    """
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}, not {network!r}")
    if not sandbox.confined:
        if overlaid:
            raise ValueError("read-only overlaid binds need a confined sandbox")
        return list(argv)
    bwrap = sandbox.bwrap or shutil.which("bwrap") or "bwrap"
    prefix = _bwrap_argv(bwrap, userns=sandbox.userns, disable_userns=sandbox.nested_userns_disabled,
                         network=network, readable=readable, writable=writable,
                         hidden=hidden, cwd=cwd, overlaid=overlaid)
    # bwrap always exports PWD; drop it so the child sees exactly the allowlisted environment.
    return [*prefix, "/usr/bin/env", "-u", "PWD", *argv]


def _bwrap_argv(bwrap: str, *, userns: bool, disable_userns: bool = False, network: Network, readable: Iterable[Path],
                writable: Iterable[Path], hidden: Iterable[Path], cwd: Path | None,
                overlaid: Iterable[tuple[Path, Path]] = ()) -> list[str]:
    args = [bwrap, "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if userns:
        args.append("--unshare-user")
        if disable_userns:
            args.append("--disable-userns")
    if network != "host":
        args.append("--unshare-net")
    args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    args += _system_binds()
    hidden_abs = [h for h in map(_absolute, hidden) if h != Path("/")]
    ro = [p for p in _existing(readable) if p not in hidden_abs]
    outer = [p for p in ro if not any(_within(p, h) for h in hidden_abs)]
    for path in outer:
        args += ["--ro-bind", str(path), str(path)]
    rw = [_absolute(p) for p in writable]
    sealed: list[Path] = []
    masked: list[Path] = []
    for mask in sorted(hidden_abs, key=lambda p: len(p.parts)):
        if any(_within(mask, m) for m in masked):
            continue  # already under an (outer) mask
        holds_writable = any(_within(p, mask) and p != mask for p in rw)
        if (any(_within(mask, p) for p in outer) or holds_writable) and mask.is_dir():
            masked.append(mask)
            args += ["--tmpfs", str(mask)]
            if holds_writable:  # the run dir: an empty, read-only skeleton around workspace/ etc.
                sealed.append(mask)
    for path in ro:
        if path not in outer:  # explicitly readable inside a hidden dir: bound over the mask
            args += ["--ro-bind", str(path), str(path)]
    for path in rw:
        args += ["--bind", str(path), str(path)]
    for source, destination in overlaid:
        args += ["--ro-bind", str(_absolute(source)), str(_absolute(destination))]
    for mask in sealed:
        args += ["--remount-ro", str(mask)]
    args += ["--remount-ro", "/"]
    if cwd is not None:
        args += ["--chdir", str(cwd)]
    return [*args, "--"]


def warm_sandbox_paths() -> None:
    """Work out what every sandbox of this process binds (a zygote does it once for its forks)."""
    runtime_paths()
    _system_binds()


@functools.cache
def _system_binds() -> tuple[str, ...]:
    args: list[str] = []
    for name in SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    for rel in ETC_ALLOWLIST:
        path = Path("/etc", rel)
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    return tuple(args)


def _existing(paths: Iterable[Path]) -> list[Path]:
    seen: dict[Path, None] = {}
    for path in paths:
        absolute = _absolute(path)
        if absolute != Path("/") and os.path.lexists(absolute) and absolute.exists():
            seen.setdefault(absolute, None)
    return list(seen)


def _absolute(path: Path | str) -> Path:
    return Path(os.path.abspath(path))


def _within(path: Path, ancestor: Path) -> bool:
    return path == ancestor or path.is_relative_to(ancestor)


def runtime_paths(executable: str | Path = sys.executable) -> list[Path]:
    """Read-only paths an interpreter needs: its install prefix, a venv and its base.

    For ``sys.executable`` in a venv that is the venv and the base interpreter's prefix
    (never a broad directory such as ``/`` or a home directory: see ``runtime_prefix``).
    Our own interpreter's answer is worked out once per process (two sandboxes per run).
    """
    if Path(executable) == Path(sys.executable):
        return list(_own_runtime_paths(os.environ.get("HOME")))
    return _runtime_paths(executable)


@functools.cache
def _own_runtime_paths(home: str | None) -> tuple[Path, ...]:
    return tuple(_runtime_paths(sys.executable))


def _runtime_paths(executable: str | Path) -> list[Path]:
    paths: list[Path] = []
    exe = Path(executable)
    for candidate in (exe, Path(os.path.realpath(exe))):
        prefix = runtime_prefix(candidate)
        paths.append(prefix if prefix is not None else candidate)
    if Path(executable) == Path(sys.executable):
        paths += [Path(sys.prefix), Path(sys.base_prefix)]
    cfg = _pyvenv_home(exe)
    if cfg is not None:
        paths.append(cfg)
    return [p for p in dict.fromkeys(paths) if not _too_broad(p)]


def runtime_prefix(executable: Path) -> Path | None:
    """``<prefix>`` for ``<prefix>/bin/<exe>`` (a toolchain's install tree), else None."""
    parent = executable.parent
    if parent.name in ("bin", "sbin"):
        prefix = parent.parent
        return None if _too_broad(prefix) else prefix
    return None


def _pyvenv_home(exe: Path) -> Path | None:
    prefix = exe.parent.parent
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in (prefix / "pyvenv.cfg").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                home = runtime_prefix(Path(value.strip()) / "python")
                return home
    return None


def _too_broad(path: Path) -> bool:
    """A directory that would expose far more than one toolchain (homes, /, /tmp, /var...)."""
    path = _absolute(path)
    if len(path.parts) <= 2:  # "/", "/usr", "/root", "/home", "/tmp", "/opt"
        return True
    home = os.environ.get("HOME")
    broad = {Path("/home"), Path("/root"), Path("/tmp"), Path("/var/tmp"), *([Path(home)] if home else [])}
    return path in broad or path.parent == Path("/home")
