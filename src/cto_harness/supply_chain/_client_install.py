"""Install a pinned client from its registry and admit its executable by digest.

Layout: ``<home>/providers/<name>/<version>/`` is the npm ``--prefix`` or the
virtualenv; ``cto-harness-install.json`` in it records the registry pins and the
admitted digest. An install whose record is present and whose tree still verifies is
reused (installs are idempotent and cheap to repeat in CI).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from cto_harness.evidence import atomic_write_bytes, sha256_file
from cto_harness.proc import SpawnError, run_to_log
from cto_harness.supply_chain._catalog import CatalogEntry, Identify
from cto_harness.supply_chain._client_catalog import ClientSpec, client_spec
from cto_harness.supply_chain._client_tree import (
    INSTALL_RECORD,
    LauncherPins,
    render_launcher,
    tree_sha256,
    verify_launcher,
)
from cto_harness.supply_chain._errors import AdmitError
from cto_harness.supply_chain._store import admit, load_admission

INSTALL_TIMEOUT_S = 900.0


class InstallError(RuntimeError):
    """The client could not be installed or admitted; the message says why."""


class InstallRecord(BaseModel):
    """``cto-harness-install.json``: what was installed from where, and what was admitted."""

    schema_version: str = "cto-harness.client-install/1"
    name: str
    kind: str
    package: str
    version: str
    prefix: str
    source_url: str
    integrity: str
    """The registry integrity observed at install (equal to the catalog pin)."""
    dependencies: dict[str, str] = Field(default_factory=dict)
    """Every installed package -> its registry integrity / archive hash."""
    executable: str
    """The installed file that was admitted (native binary or launcher)."""
    sha256: str
    admitted_path: str | None = None
    installed_at: str
    command: list[str]
    log: str


def client_prefix(home: Path, spec: ClientSpec) -> Path:
    return home / "providers" / spec.name / spec.version


def installed_record(home: Path, name: str) -> InstallRecord | None:
    """The install record of the pinned version of ``name``, or None when not installed."""
    spec = client_spec(name)
    path = client_prefix(home, spec) / INSTALL_RECORD
    if not path.is_file():
        return None
    try:
        return InstallRecord.model_validate_json(path.read_text("utf-8"))
    except ValueError:
        return None


def install_client(name: str, *, home: Path, environ: Mapping[str, str],
                   echo: Callable[[str], None] = lambda _m: None, force: bool = False) -> InstallRecord:
    """Install the pinned version of ``name`` and admit its executable.

    Raises:
        ClientCatalogError: unknown client.
        InstallError: registry failure, integrity mismatch, identification or admission failure.
    """
    spec = client_spec(name)
    prefix = client_prefix(home, spec)
    record = None if force else installed_record(home, name)
    if record is not None and _still_good(record):
        echo(f"{name} {spec.version} already installed at {prefix}")
        return _admit(spec, record, home, environ, echo)
    if prefix.exists():
        shutil.rmtree(prefix)
    prefix.mkdir(parents=True)
    log = prefix / "install.log"
    echo(f"installing {spec.spec} from the {spec.kind} registry into {prefix}")
    if spec.kind == "npm":
        command, integrity, deps = _npm_install(spec, prefix, environ, log)
    else:
        command, integrity, deps = _pip_install(spec, prefix, environ, log)
    if integrity != spec.integrity:
        raise InstallError(f"{spec.spec}: registry integrity {integrity} differs from the pinned {spec.integrity}; "
                           "refusing to admit it")
    executable = _native_executable(spec, prefix) if spec.mode == "native" else _write_launcher(spec, prefix)
    record = InstallRecord(
        name=name, kind=spec.kind, package=spec.package, version=spec.version, prefix=str(prefix),
        source_url=spec.source_url, integrity=integrity, dependencies=deps, executable=str(executable),
        sha256=sha256_file(executable), installed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        command=command, log=str(log),
    )
    return _admit(spec, record, home, environ, echo)


def _still_good(record: InstallRecord) -> bool:
    exe = Path(record.executable)
    return exe.is_file() and sha256_file(exe) == record.sha256 and verify_launcher(exe) is None


def _admit(spec: ClientSpec, record: InstallRecord, home: Path, environ: Mapping[str, str],
           echo: Callable[[str], None]) -> InstallRecord:
    entry = catalog_entry_for(spec, Path(record.executable).name, record.integrity)
    existing = load_admission(home, record.sha256)
    try:
        admission, new = admit(entry, home=home, environ=environ, binary=Path(record.executable),
                               expect_sha256=record.sha256)
    except AdmitError as exc:
        raise InstallError(f"{spec.name}: admission refused: {exc}") from exc
    echo(f"{'admitted' if new or existing is None else 'already admitted'} {spec.name} {spec.version}: "
         f"sha256 {admission.sha256} -> {admission.path}")
    record = record.model_copy(update={"admitted_path": admission.path})
    _write_record(Path(record.prefix), record)
    return record


def catalog_entry_for(spec: ClientSpec, file_name: str, integrity: str) -> CatalogEntry:
    """An admission catalog entry for a registry client.

    Its pin is the registry integrity of the pinned release (``pin_kind = "registry"``).
    """
    return CatalogEntry(
        name=spec.name,
        description=spec.description,
        source_url=spec.source_url,
        pin=integrity,
        pin_kind="registry",
        toolchain=[],
        build_command=["cto-harness", "provider", "install", spec.name],
        artifact=file_name,
        identify=Identify(args=spec.identify.args, patterns=spec.identify.patterns, expect_exit_code=0,
                          timeout_s=30.0),
        build_timeout_s=INSTALL_TIMEOUT_S,
        bun_version=None,
        known_digests=[],
        origin="clients.toml",
    )


def _write_record(prefix: Path, record: InstallRecord) -> None:
    atomic_write_bytes(prefix / INSTALL_RECORD, (record.model_dump_json(indent=2) + "\n").encode())


def _run(argv: list[str], *, cwd: Path, env: Mapping[str, str], log: Path) -> None:
    with log.open("ab") as out:
        out.write(("$ " + " ".join(argv) + "\n").encode())
        out.flush()
    try:
        proc = run_to_log(argv, cwd=cwd, env=env, timeout_s=INSTALL_TIMEOUT_S, log=log)
    except SpawnError as exc:
        raise InstallError(f"{argv[0]} not found: {exc}") from exc
    if proc.timed_out:
        raise InstallError(f"{' '.join(argv[:3])} timed out after {INSTALL_TIMEOUT_S:g} s; see {log}")
    if proc.exit_code != 0:
        tail = log.read_text("utf-8", "replace").strip().splitlines()[-5:]
        raise InstallError(f"{' '.join(argv[:4])} exited {proc.exit_code}; see {log}:\n  " + "\n  ".join(tail))


def _tool_env(environ: Mapping[str, str]) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
            "NO_PROXY", "no_proxy", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE")
    env = {k: environ[k] for k in keep if k in environ}
    env.update({k: v for k, v in environ.items() if k.startswith(("npm_config_", "NPM_CONFIG_", "PIP_"))})
    return env


def _npm_install(spec: ClientSpec, prefix: Path, environ: Mapping[str, str],
                 log: Path) -> tuple[list[str], str, dict[str, str]]:
    npm = shutil.which("npm", path=environ.get("PATH"))
    if npm is None:
        raise InstallError("npm not found on PATH (Node.js 20+ with npm is needed to install npm clients)")
    command = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--ignore-scripts",
               "--no-update-notifier", "--omit=dev", spec.spec]
    env = _tool_env(environ)
    _run(command, cwd=prefix, env=env, log=log)
    lock_path = prefix / "package-lock.json"
    try:
        lock: dict[str, Any] = json.loads(lock_path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InstallError(f"npm wrote no readable {lock_path}: {exc}") from exc
    packages: dict[str, Any] = lock.get("packages", {})
    deps = {key.removeprefix("node_modules/"): str(value.get("integrity"))
            for key, value in packages.items() if key and isinstance(value, dict) and value.get("integrity")}
    top = packages.get(f"node_modules/{spec.package}", {})
    if top.get("version") != spec.version:
        raise InstallError(f"npm installed {spec.package} {top.get('version')}, not the pinned {spec.version}")
    return command, str(top.get("integrity")), deps


def _pip_install(spec: ClientSpec, prefix: Path, environ: Mapping[str, str],
                 log: Path) -> tuple[list[str], str, dict[str, str]]:
    env = _tool_env(environ)
    _run([sys.executable, "-m", "venv", str(prefix)], cwd=prefix, env=env, log=log)
    python = prefix / "bin" / "python"
    report = prefix / "pip-install-report.json"
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
               "--only-binary", ":all:", "--report", str(report), spec.spec]
    _run(command, cwd=prefix, env=env, log=log)
    try:
        data: dict[str, Any] = json.loads(report.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InstallError(f"pip wrote no readable {report}: {exc}") from exc
    deps: dict[str, str] = {}
    top = ""
    for item in data.get("install", []):
        meta = item.get("metadata", {})
        hashes = item.get("download_info", {}).get("archive_info", {}).get("hashes", {})
        digest = f"sha256:{hashes['sha256']}" if "sha256" in hashes else "unknown"
        deps[f"{meta.get('name')}=={meta.get('version')}"] = digest
        if str(meta.get("name", "")).lower().replace("_", "-") == spec.package and meta.get("version") == spec.version:
            top = digest
    if not top:
        top = _wheel_digest(spec, python, env, log)
    return command, top, deps


def _wheel_digest(spec: ClientSpec, python: Path, env: Mapping[str, str], log: Path) -> str:
    """The wheel's sha256 when pip's report has none (installed from a local cache)."""
    with tempfile.TemporaryDirectory(prefix="cto-harness-wheel-") as tmp:
        _run([str(python), "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", tmp, spec.spec],
             cwd=Path(tmp), env=env, log=log)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise InstallError(f"expected one wheel for {spec.spec}, found {[w.name for w in wheels]}")
        return f"sha256:{sha256_file(wheels[0])}"


def _native_executable(spec: ClientSpec, prefix: Path) -> Path:
    assert spec.executable is not None
    matches = [Path(p) for p in sorted(glob.glob(str(prefix / spec.executable)))]
    files = [p for p in matches if p.is_file() and os.access(p, os.X_OK)]
    if len(files) != 1:
        raise InstallError(f"{spec.name}: expected one executable matching {spec.executable} under {prefix}, "
                           f"found {[str(p) for p in files] or 'none'} (unsupported platform?)")
    return files[0]


def _write_launcher(spec: ClientSpec, prefix: Path) -> Path:
    assert spec.entry is not None
    launcher = prefix / f"cto-harness-{spec.name}"
    if spec.kind == "npm":
        node = shutil.which("node")
        if node is None:
            raise InstallError("node not found on PATH")
        runtime = Path(node).resolve()
        entry = prefix / spec.entry
        if not entry.is_file():
            raise InstallError(f"{spec.name}: entry {entry} missing after install")
        argv = [str(runtime), str(entry)]
    else:
        runtime = (prefix / "bin" / "python").resolve()
        module, _, func = spec.entry.partition(":")
        code = f"import sys; from {module} import {func} as main; sys.argv[0] = {spec.name!r}; sys.exit(main())"
        argv = [str(prefix / "bin" / "python"), "-s", "-c", code]
    pins = LauncherPins(tree=prefix, tree_sha256=tree_sha256(prefix, exclude=frozenset({launcher.name,
                                                                                       INSTALL_RECORD})),
                        runtime=runtime, runtime_sha256=sha256_file(runtime))
    text = render_launcher(title=f"{spec.name} {spec.version} ({spec.spec}, {spec.kind})", pins=pins, argv=argv,
                           python=spec.kind == "pypi")
    atomic_write_bytes(launcher, text.encode())
    os.chmod(launcher, 0o755)
    return launcher
