"""Really bootstrap Bun from the npm registry into a temp home (needs the registry)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cto_harness.supply_chain import (
    bootstrap_bun,
    check_toolchain,
    load_catalog,
    remove_bun,
)


@pytest.mark.network_registry
@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_bootstrap_bun_from_npm_registry(tmp_path: Path) -> None:
    home = tmp_path / "home"
    entry = load_catalog()["case"]
    assert entry.bun_version is not None
    environ = dict(os.environ)
    record = bootstrap_bun(entry.bun_version, home=home, environ=environ)
    prefix = home / "toolchains" / f"bun-{entry.bun_version}"
    assert record.prefix == str(prefix)
    assert (prefix / "toolchain.json").is_file()
    bun = prefix / "node_modules" / ".bin" / "bun"
    out = subprocess.run([str(bun), "--version"], capture_output=True, text=True, check=True,
                         timeout=60)
    assert out.stdout.strip() == entry.bun_version
    report = check_toolchain(entry, home=home, environ=environ)
    (bun_status,) = [t for t in report.tools if t.name == "bun"]
    assert bun_status.ok and bun_status.bootstrapped
    # Idempotent, then reversible.
    assert bootstrap_bun(entry.bun_version, home=home, environ=environ).installed_at == (
        record.installed_at
    )
    remove_bun(entry.bun_version, home=home)
    assert not prefix.exists()


@pytest.mark.network_registry
@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_case_shaped_route_with_bootstrapped_bun(tmp_path: Path) -> None:
    """Case's route on a toy TypeScript provider: node + Bun, `bun run build:binary`."""
    from cto_harness.supply_chain import (
        CatalogEntry,
        Identify,
        ToolRequirement,
        admit,
        build,
        discover,
        resolve_provider_executable,
    )

    from .conftest import git

    repo = tmp_path / "toyca"
    (repo / "src").mkdir(parents=True)
    (repo / "package.json").write_text(
        '{"name": "toyca", "private": true, "scripts": {"build:binary": '
        '"bun build --compile src/index.ts --outfile dist/toyca"}}\n')
    (repo / "src" / "index.ts").write_text(
        'if (process.argv[2] === "--help") {\n'
        '  process.stdout.write("Usage: toyca <command> [options]\\ntoy provider\\n");\n'
        "}\n")
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "toyca", cwd=repo)
    pin = git("rev-parse", "HEAD", cwd=repo)
    case = load_catalog()["case"]
    entry = CatalogEntry(
        name="toyca", source_url=f"file://{repo}", pin=pin,
        toolchain=[ToolRequirement(name="node", min_version="20"), ToolRequirement(name="bun")],
        build_command=["bun", "run", "build:binary"], artifact="dist/toyca",
        identify=Identify(patterns=[r"(?m)^Usage: toyca <command>"]),
        bun_version=case.bun_version, build_timeout_s=300,
    )
    home = tmp_path / "home"
    environ = dict(os.environ)
    node = check_toolchain(entry, home=home, environ=environ).tools[0]
    if not node.ok:
        pytest.skip(f"node >= 20 not available: {node.detail}")
    assert entry.bun_version is not None
    bootstrap_bun(entry.bun_version, home=home, environ=environ)
    discover("toyca", home=home, environ=environ, entry=entry)
    built = build(entry, home=home, environ=environ)
    assert built.ok and built.artifact is not None
    assert any("bun-" in d for d in built.path_prepend)
    record, _ = admit(entry, home=home, environ=environ)
    assert record.sha256 == built.artifact.sha256 and record.identify.ok
    res = resolve_provider_executable("toyca", environ=environ, home=home,
                                      bin_env_var="CTO_HARNESS_TOYCA_BIN", allow_unadmitted=False)
    assert res.blocked is None and res.lane == "real" and res.sha256 == record.sha256
