"""Build a provider from its pin in a fresh checkout, and record everything.

Source and pin come from the operator (``--source``/``--pin``), else from the latest
discovery (what ``provider discover`` verified), else from the catalog. The build never
touches the discovery clone: it clones (from the discovery clone when it holds that
source at that pin, else from the source) into a checkout whose path depends only on
the provider and the pin, ``/tmp/cto-harness-build/<name>/<pin>/``
(``$CTO_HARNESS_BUILD_ROOT`` overrides the root; wiped and re-cloned for every build,
one build of a pin at a time), because a compiled binary may embed its build path: two
harness homes, or two machines, then build the same bytes. Every directory of that path
must be ours (not a symlink, owned by this uid), else the build is refused.
``SOURCE_DATE_EPOCH`` is the pinned commit's committer time. The catalog's install
command runs first (the lockfile's digest is recorded), then the build command, with
bootstrapped toolchains first on PATH under one timeout. ``build.json`` is written even
when the build fails, in ``<home>/builds/<name>/<pin>-<stamp>/``, and the artifact is
copied next to it. Tracked files the build modified are listed (a dirty build is
recorded, not hidden). The artifact must be a regular executable file inside the
checkout.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from cto_harness.evidence import sha256_file
from cto_harness.proc import run_to_log
from cto_harness.supply_chain._atomic import write_json
from cto_harness.supply_chain._catalog import CatalogEntry
from cto_harness.supply_chain._discover import discovery_dir, latest_discovery, load_discovery
from cto_harness.supply_chain._errors import AdmissionError, BuildError, ToolchainError
from cto_harness.supply_chain._git import (
    clone_at_pin,
    commit_time,
    redact_url,
    status,
    url_secrets,
    validate_pin,
)
from cto_harness.supply_chain._records import ArtifactInfo, BuildRecord, LockfileInfo, Reproducibility
from cto_harness.supply_chain._toolchain import bootstrapped_bin_dirs, check_toolchain, search_path
from cto_harness.supply_chain._util import force_rmtree, iso, stamp, utc_now

UNTRACKED_CAP = 200


def builds_dir(home: Path, name: str) -> Path:
    return home / "builds" / name


BUILD_ROOT_ENV = "CTO_HARNESS_BUILD_ROOT"
DEFAULT_BUILD_ROOT = Path("/tmp/cto-harness-build")


def build_checkout(name: str, pin: str, *, environ: Mapping[str, str]) -> Path:
    """The checkout of every build of ``name`` at ``pin``: its path depends on nothing else
    (not the harness home, not the time), unless ``CTO_HARNESS_BUILD_ROOT`` moves the root."""
    return Path(environ.get(BUILD_ROOT_ENV) or DEFAULT_BUILD_ROOT) / name / pin


def _own_dirs(checkout: Path) -> None:
    """Create the checkout's parents; refuse one that is a symlink or another user's."""
    checkout.parent.parent.parent.mkdir(parents=True, exist_ok=True)
    for folder in (checkout.parent.parent, checkout.parent):
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise BuildError(f"build directory {folder} is not a directory owned by uid {os.getuid()}; "
                             f"remove it or set {BUILD_ROOT_ENV} to a directory of your own")


def _new_build_dir(home: Path, name: str, pin: str) -> Path:
    root = builds_dir(home, name)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{pin}-{stamp(utc_now())}"
    for n in range(1000):
        candidate = root / (base if n == 0 else f"{base}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise BuildError(f"cannot allocate a build directory under {root}")


@contextmanager
def _checkout_lock(checkout: Path) -> Iterator[None]:
    """One build of a pin at a time: they share the pin-derived checkout path."""
    with open(checkout.parent / f"{checkout.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_artifact(checkout: Path, relative: str) -> ArtifactInfo:
    """The artifact must resolve to a regular executable file inside the checkout."""
    path = checkout / relative
    if not path.exists() and not path.is_symlink():
        raise BuildError(f"build did not produce {relative}")
    root = checkout.resolve()
    real = path.resolve()
    link = os.readlink(path) if path.is_symlink() else None
    if not real.is_relative_to(root):
        raise BuildError(f"artifact {relative} is a symlink resolving outside the build dir ({real})")
    if real.is_dir():
        raise BuildError(f"artifact {relative} is a directory, not an executable file")
    if not real.is_file():
        raise BuildError(f"artifact {relative} is not a regular file")
    if not os.access(real, os.X_OK):
        raise BuildError(f"artifact {relative} is not executable")
    return ArtifactInfo(path=relative, absolute=str(real), built_path=str(real), sha256=sha256_file(real),
                        bytes=real.stat().st_size, symlink_target=link)


def _keep_artifact(info: ArtifactInfo, build_dir: Path, file_name: str) -> ArtifactInfo:
    """Copy the artifact out of the shared checkout into the build's own dir."""
    kept = build_dir / "artifact" / file_name
    kept.parent.mkdir()
    shutil.copyfile(info.absolute, kept)
    kept.chmod(0o755)
    digest = sha256_file(kept)
    if digest != info.sha256:
        raise BuildError(f"artifact changed while being copied ({info.sha256} -> {digest})")
    return info.model_copy(update={"absolute": str(kept)})


def build_source(entry: CatalogEntry, *, home: Path, source: str | None = None,
                 pin: str | None = None) -> tuple[str, str, str]:
    """(source URL, pin, pinned_by): the operator's, else the latest discovery's, else the catalog's."""
    discovered = latest_discovery(home, entry.name)
    if source is not None or pin is not None:
        commit = validate_pin(pin or (discovered.pin if discovered else entry.pin))
        of_pin = load_discovery(home, entry.name, commit)
        known = of_pin or discovered
        return source or (known.source_url if known else entry.source_url), commit, "operator"
    if discovered is not None:
        return discovered.source_url, discovered.pin, "discovery"
    return entry.source_url, entry.pin, "catalog"


def build(
    entry: CatalogEntry,
    *,
    home: Path,
    environ: Mapping[str, str],
    timeout_s: float | None = None,
    source: str | None = None,
    pin: str | None = None,
) -> BuildRecord:
    """Build ``entry`` at its pin (see :func:`build_source`); return the successful build record.

    Raises:
        ToolchainError: a required tool is missing (no build dir is made).
        BuildError: the build failed; ``build.json`` with ``ok: false`` is still written.
    """
    timeout = timeout_s if timeout_s is not None else entry.build_timeout_s
    toolchain = check_toolchain(entry, home=home, environ=environ)
    if not toolchain.ok:
        raise ToolchainError(
            f"toolchain for {entry.name} incomplete ({toolchain.summary}); run "
            f"`cto-harness provider toolchain {entry.name} --bootstrap`"
        )
    url, commit, pinned_by = build_source(entry, home=home, source=source, pin=pin)
    discovery = load_discovery(home, entry.name, commit)
    if discovery is not None and discovery.source_url == redact_url(url):
        origin, cloned_from = str(discovery_dir(home, entry.name, commit) / "checkout"), "discovery"
        source_url = discovery.source_url
    else:
        origin, cloned_from = url, "source"
        source_url = redact_url(url)
    checkout = build_checkout(entry.name, commit, environ=environ)
    _own_dirs(checkout)
    build_dir = _new_build_dir(home, entry.name, commit)
    log = build_dir / "build.log"
    log.touch()
    path_value = search_path(home, environ, entry.bun_version)
    started = utc_now()
    clock = time.monotonic()
    fields: dict[str, object] = {
        "name": entry.name, "source_url": source_url, "pin": commit, "pinned_by": pinned_by,
        "cloned_from": cloned_from, "build_dir": str(build_dir), "checkout": str(checkout),
        "command": list(entry.build_command), "install_command": entry.install_command,
        "timeout_s": timeout, "log": str(log),
        "toolchain": toolchain, "started_at": iso(started),
        "path_prepend": [str(d) for d in bootstrapped_bin_dirs(home, entry.bun_version)],
    }

    def finish(ok: bool, failure: str | None = None, **more: object) -> BuildRecord:
        finished = utc_now()
        record = BuildRecord.model_validate({
            **fields, **more, "ok": ok, "failure": failure, "finished_at": iso(finished),
            "duration_s": round((finished - started).total_seconds(), 3),
        })
        write_json(build_dir / "build.json", record)
        return record

    where = f"(log: {log}; record: {build_dir / 'build.json'})"
    with _checkout_lock(checkout):
        force_rmtree(checkout)
        try:
            fields["head"] = clone_at_pin(origin, checkout, commit, environ=environ,
                                          shown_source=source_url, secrets=url_secrets(origin))
            epoch = commit_time(checkout, environ=environ)
        except AdmissionError as exc:
            finish(False, f"checkout failed: {exc}")
            raise BuildError(f"build checkout failed: {exc} (record: {build_dir / 'build.json'})") from exc
        fields["source_date_epoch"] = epoch
        if entry.lockfile is not None:
            lock = checkout / entry.lockfile
            fields["lockfile"] = LockfileInfo(path=entry.lockfile,
                                              sha256=sha256_file(lock) if lock.is_file() else None)
        env = {**environ, "PATH": path_value, "SOURCE_DATE_EPOCH": str(epoch)}
        for step in ([entry.install_command] if entry.install_command else []) + [entry.build_command]:
            resolved = shutil.which(step[0], path=path_value)
            if resolved is None and os.sep not in step[0]:
                failure = f"build command {step[0]!r} not found on PATH"
                finish(False, failure)
                raise BuildError(f"{failure} (record: {build_dir / 'build.json'})")
            installing = step is entry.install_command
            if not installing:
                fields["resolved_command"] = resolved
            with log.open("a") as fh:
                fh.write(f"$ {' '.join(step)}\n")
            left = max(0.1, timeout - (time.monotonic() - clock))
            result = run_to_log(step, cwd=checkout, env=env, timeout_s=left, log=log)
            fields["install_exit_code" if installing else "exit_code"] = None if result.timed_out else result.exit_code
            fields["timed_out"] = result.timed_out
            if result.timed_out:
                finish(False, f"build timed out after {timeout:g}s")
                raise BuildError(f"build of {entry.name} timed out after {timeout:g}s {where}")
            if result.exit_code != 0:
                what = "install command" if installing else "build command"
                finish(False, f"{what} exited {result.exit_code}")
                verb = "install step failed" if installing else "failed"
                raise BuildError(f"build of {entry.name} {verb}: exit {result.exit_code} {where}")
        tracked, untracked = status(checkout, environ=environ)
        fields.update(
            modified_tracked_files=tracked, untracked_files=untracked[:UNTRACKED_CAP],
            untracked_truncated=len(untracked) > UNTRACKED_CAP, dirty=bool(tracked),
        )
        try:
            artifact = _keep_artifact(check_artifact(checkout, entry.artifact), build_dir,
                                      entry.artifact_name)
        except BuildError as exc:
            finish(False, str(exc))
            raise BuildError(f"{exc} {where}") from exc
    return finish(True, artifact=artifact)


def verify_reproducible(
    entry: CatalogEntry,
    *,
    home: Path,
    environ: Mapping[str, str],
    timeout_s: float | None = None,
    source: str | None = None,
    pin: str | None = None,
) -> BuildRecord:
    """Build twice from fresh checkouts and compare the artifacts' digests.

    Returns the second build's record, which carries ``reproducibility`` (also written
    to its ``build.json``); ``admit`` copies it into the admission record.

    Raises:
        ToolchainError, BuildError: as :func:`build`, for either build.
    """
    first = build(entry, home=home, environ=environ, timeout_s=timeout_s, source=source, pin=pin)
    second = build(entry, home=home, environ=environ, timeout_s=timeout_s, source=source, pin=pin)
    assert first.artifact is not None and second.artifact is not None
    digests = [first.artifact.sha256, second.artifact.sha256]
    record = second.model_copy(update={"reproducibility": Reproducibility(
        reproducible=digests[0] == digests[1], digests=digests,
        builds=[first.build_dir, second.build_dir])})
    write_json(Path(second.build_dir) / "build.json", record)
    return record


def list_builds(home: Path, name: str) -> list[BuildRecord]:
    """Every recorded build of ``name``, oldest first."""
    root = builds_dir(home, name)
    records = []
    if root.is_dir():
        for child in root.iterdir():
            path = child / "build.json"
            if path.is_file():
                records.append(BuildRecord.model_validate_json(path.read_text("utf-8")))
    return sorted(records, key=lambda r: r.started_at)


def latest_good_build(home: Path, name: str) -> BuildRecord | None:
    good = [b for b in list_builds(home, name) if b.ok and b.artifact is not None]
    return good[-1] if good else None
