"""Build a provider from its pin in a fresh checkout, and record everything.

The build never touches the discovery clone: it clones (from the discovery clone when
there is one, else from the source) into ``<home>/builds/<name>/<pin>-<stamp>/src``,
runs the catalog's build command with bootstrapped toolchains first on PATH under a
timeout, and writes ``build.json`` even when the build fails. Tracked files the build
modified are listed (a dirty build is recorded, not hidden). The artifact must be a
regular executable file inside the checkout.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from cto_harness.evidence import sha256_file
from cto_harness.proc import run_to_log
from cto_harness.supply_chain._atomic import write_json
from cto_harness.supply_chain._catalog import CatalogEntry
from cto_harness.supply_chain._discover import discovery_dir, load_discovery
from cto_harness.supply_chain._errors import AdmissionError, BuildError, ToolchainError
from cto_harness.supply_chain._git import clone_at_pin, redact_url, status, url_secrets
from cto_harness.supply_chain._records import ArtifactInfo, BuildRecord
from cto_harness.supply_chain._toolchain import bootstrapped_bin_dirs, check_toolchain, search_path
from cto_harness.supply_chain._util import iso, stamp, utc_now

UNTRACKED_CAP = 200


def builds_dir(home: Path, name: str) -> Path:
    return home / "builds" / name


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
    return ArtifactInfo(path=relative, absolute=str(real), sha256=sha256_file(real),
                        bytes=real.stat().st_size, symlink_target=link)


def build(
    entry: CatalogEntry,
    *,
    home: Path,
    environ: Mapping[str, str],
    timeout_s: float | None = None,
) -> BuildRecord:
    """Build ``entry`` at its pin; return the successful build record.

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
    discovery = load_discovery(home, entry.name, entry.pin)
    if discovery is not None:
        origin, cloned_from = str(discovery_dir(home, entry.name, entry.pin) / "checkout"), "discovery"
        source_url = discovery.source_url
    else:
        origin, cloned_from = entry.source_url, "source"
        source_url = redact_url(entry.source_url)
    build_dir = _new_build_dir(home, entry.name, entry.pin)
    checkout = build_dir / "src"
    log = build_dir / "build.log"
    log.touch()
    path_value = search_path(home, environ, entry.bun_version)
    started = utc_now()
    fields: dict[str, object] = {
        "name": entry.name, "source_url": source_url, "pin": entry.pin,
        "cloned_from": cloned_from, "build_dir": str(build_dir), "checkout": str(checkout),
        "command": list(entry.build_command), "timeout_s": timeout, "log": str(log),
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

    try:
        fields["head"] = clone_at_pin(origin, checkout, entry.pin, environ=environ,
                                      shown_source=source_url, secrets=url_secrets(origin))
    except AdmissionError as exc:
        finish(False, f"checkout failed: {exc}")
        raise BuildError(f"build checkout failed: {exc} (record: {build_dir / 'build.json'})") from exc

    resolved = shutil.which(entry.build_command[0], path=path_value)
    if resolved is None and os.sep not in entry.build_command[0]:
        failure = f"build command {entry.build_command[0]!r} not found on PATH"
        finish(False, failure)
        raise BuildError(f"{failure} (record: {build_dir / 'build.json'})")
    fields["resolved_command"] = resolved
    env = {**environ, "PATH": path_value}
    result = run_to_log(entry.build_command, cwd=checkout, env=env, timeout_s=timeout, log=log)
    tracked, untracked = status(checkout, environ=environ)
    fields.update(
        exit_code=None if result.timed_out else result.exit_code, timed_out=result.timed_out,
        modified_tracked_files=tracked, untracked_files=untracked[:UNTRACKED_CAP],
        untracked_truncated=len(untracked) > UNTRACKED_CAP, dirty=bool(tracked),
    )
    where = f"(log: {log}; record: {build_dir / 'build.json'})"
    if result.timed_out:
        finish(False, f"build timed out after {timeout:g}s")
        raise BuildError(f"build of {entry.name} timed out after {timeout:g}s {where}")
    if result.exit_code != 0:
        finish(False, f"build command exited {result.exit_code}")
        raise BuildError(f"build of {entry.name} failed: exit {result.exit_code} {where}")
    try:
        artifact = check_artifact(checkout, entry.artifact)
    except BuildError as exc:
        finish(False, str(exc))
        raise BuildError(f"{exc} {where}") from exc
    return finish(True, artifact=artifact)


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
