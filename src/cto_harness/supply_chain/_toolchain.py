"""Build toolchain detection and the reversible Bun bootstrap.

Tools are looked up first in bootstrapped dirs under ``<home>/toolchains/`` and then on
the caller's PATH. Bun, the one tool the harness installs itself, comes from the npm
registry into ``<home>/toolchains/bun-<version>/`` with ``npm --prefix``: never a global
install, and removable by deleting that one directory.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cto_harness.proc import SpawnError, read_capped, run_captured, run_to_log
from cto_harness.supply_chain._atomic import write_json
from cto_harness.supply_chain._catalog import CatalogEntry, ToolRequirement
from cto_harness.supply_chain._errors import ToolchainError
from cto_harness.supply_chain._records import BootstrapRecord, ToolchainReport, ToolStatus
from cto_harness.supply_chain._util import force_rmtree, iso, utc_now

_NUM_RE = re.compile(r"\d+(?:\.\d+)*")
_BUN_DIR_RE = re.compile(r"^bun-(\d+\.\d+\.\d+)$")
VERSION_TIMEOUT_S = 15.0
BOOTSTRAP_TIMEOUT_S = 900.0


def toolchains_dir(home: Path) -> Path:
    return home / "toolchains"


def bun_prefix(home: Path, version: str) -> Path:
    return toolchains_dir(home) / f"bun-{version}"


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def bootstrapped_bin_dirs(home: Path, preferred_bun: str | None = None) -> list[Path]:
    """Bin dirs of bootstrapped toolchains: the preferred Bun first, then newest first."""
    root = toolchains_dir(home)
    found: list[tuple[str, Path]] = []
    if root.is_dir():
        for child in root.iterdir():
            m = _BUN_DIR_RE.match(child.name)
            bin_dir = child / "node_modules" / ".bin"
            if m and (child / "toolchain.json").is_file() and bin_dir.is_dir():
                found.append((m.group(1), bin_dir))
    found.sort(key=lambda item: (item[0] != preferred_bun, [-x for x in _version_key(item[0])]))
    return [path for _, path in found]


def search_path(home: Path, environ: Mapping[str, str], preferred_bun: str | None) -> str:
    """PATH with bootstrapped toolchains prepended: what builds and detection use."""
    dirs = [str(d) for d in bootstrapped_bin_dirs(home, preferred_bun)]
    caller = environ.get("PATH", os.defpath)
    return os.pathsep.join([*dirs, caller] if caller else dirs)


def parse_version(text: str) -> str | None:
    m = _NUM_RE.search(text)
    return m.group(0) if m else None


def meets(version: str, minimum: str) -> bool:
    have, need = _version_key(version), _version_key(minimum)
    width = max(len(have), len(need))
    return have + (0,) * (width - len(have)) >= need + (0,) * (width - len(need))


def _probe(req: ToolRequirement, path_value: str, home: Path, env: Mapping[str, str]) -> ToolStatus:
    exe = shutil.which(req.name, path=path_value)
    if exe is None:
        return ToolStatus(name=req.name, min_version=req.min_version, found=False, ok=False,
                          detail=f"{req.name} missing")
    bootstrapped = Path(exe).is_relative_to(toolchains_dir(home))
    probe_env = {**env, "PATH": path_value}
    try:
        proc = run_captured([exe, *req.version_args], cwd=Path.cwd(), env=probe_env, timeout_s=VERSION_TIMEOUT_S)
        if proc.timed_out:
            raise OSError(f"timed out after {VERSION_TIMEOUT_S:g} s")
        output = (proc.text("stdout").strip() or proc.text("stderr").strip()).splitlines()
        first = output[0].strip()[:200] if output else ""
    except (OSError, SpawnError) as exc:
        return ToolStatus(name=req.name, min_version=req.min_version, found=True, path=exe,
                          bootstrapped=bootstrapped, ok=False,
                          detail=f"{req.name} at {exe} did not report a version ({exc})")
    version = parse_version(first)
    if req.min_version is None:
        meets_min: bool | None = None
        ok = True
    else:
        meets_min = version is not None and meets(version, req.min_version)
        ok = meets_min
    shown = first or "(no version output)"
    if ok:
        detail = f"{req.name} {shown} present"
    elif version is None:
        detail = f"{req.name} at {exe}: unrecognised version output {shown!r}"
    else:
        detail = f"{req.name} {shown} too old (need >= {req.min_version})"
    return ToolStatus(name=req.name, min_version=req.min_version, found=True, path=exe,
                      version=version, version_output=first or None, meets_minimum=meets_min,
                      bootstrapped=bootstrapped, ok=ok, detail=detail)


def check_toolchain(entry: CatalogEntry, *, home: Path, environ: Mapping[str, str]) -> ToolchainReport:
    """Report each required tool: found or missing, where, which version."""
    path_value = search_path(home, environ, entry.bun_version)
    tools = [_probe(req, path_value, home, environ) for req in entry.toolchain]
    return ToolchainReport(
        provider=entry.name,
        checked_at=iso(utc_now()),
        tools=tools,
        ok=all(t.ok for t in tools),
        summary=", ".join(t.detail for t in tools) or "no tools required",
        bootstrapped_dirs=[str(d) for d in bootstrapped_bin_dirs(home, entry.bun_version)],
    )


def write_toolchain_report(report: ToolchainReport, home: Path) -> Path:
    path = toolchains_dir(home) / "status" / f"{report.provider}.json"
    write_json(path, report)
    return path


def bootstrap_bun(version: str, *, home: Path, environ: Mapping[str, str],
                  timeout_s: float = BOOTSTRAP_TIMEOUT_S) -> BootstrapRecord:
    """Install ``bun@<version>`` from the npm registry under ``<home>/toolchains/``.

    Idempotent: an existing, working install of that version is returned as is.
    """
    target = bun_prefix(home, version)
    record_path = target / "toolchain.json"
    if record_path.is_file():
        try:
            existing = BootstrapRecord.model_validate_json(record_path.read_text("utf-8"))
        except ValueError:
            existing = None
        if existing is not None and (Path(existing.bin_dir) / "bun").exists():
            return existing
        force_rmtree(target)
    npm = shutil.which("npm", path=environ.get("PATH", os.defpath))
    if npm is None:
        raise ToolchainError("cannot bootstrap bun: npm is not on PATH (install Node.js + npm)")
    root = toolchains_dir(home)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".bun-{version}-", dir=root))
    log = staging / "npm-install.log"
    argv = [npm, "install", "--prefix", str(staging), "--global=false", "--no-audit",
            "--no-fund", "--loglevel=warn", f"bun@{version}"]
    try:
        result = run_to_log(argv, cwd=staging, env={**environ}, timeout_s=timeout_s, log=log)
        tail = read_capped(log, 4000)[0].strip().splitlines()[-3:]
        if result.timed_out:
            raise ToolchainError(f"npm install bun@{version} timed out after {timeout_s:g}s")
        if result.exit_code != 0:
            raise ToolchainError(
                f"npm install bun@{version} failed (exit {result.exit_code}): {' | '.join(tail)}"
            )
        os.replace(staging, target)
    except BaseException:
        force_rmtree(staging)
        raise
    bin_dir = target / "node_modules" / ".bin"
    try:
        proc = run_captured([str(bin_dir / "bun"), "--version"], cwd=Path.cwd(),
                            env={**environ, "PATH": search_path(home, environ, version)},
                            timeout_s=VERSION_TIMEOUT_S)
        reported = proc.text("stdout").strip()
    except (OSError, SpawnError) as exc:
        force_rmtree(target)
        raise ToolchainError(f"bootstrapped bun@{version} does not run: {exc}") from exc
    if not proc.ok or parse_version(reported) != version:
        force_rmtree(target)
        raise ToolchainError(
            f"bootstrapped bun reports {reported or proc.text('stderr').strip()!r}, expected {version}"
        )
    record = BootstrapRecord(
        tool="bun", version=version, prefix=str(target), bin_dir=str(bin_dir),
        command=[Path(npm).name, *argv[1:3], str(target), *argv[4:]],
        source=f"npm registry package bun@{version}", installed_at=iso(utc_now()),
        verified_version_output=reported, log=str(target / "npm-install.log"),
    )
    write_json(record_path, record)
    return record


def remove_bun(version: str, *, home: Path) -> Path:
    """Delete a bootstrapped Bun (the whole prefix); refuse if it is not there."""
    target = bun_prefix(home, version)
    if not target.exists():
        raise ToolchainError(f"no bootstrapped bun {version} under {toolchains_dir(home)}")
    force_rmtree(target)
    return target
