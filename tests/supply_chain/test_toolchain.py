"""Toolchain detection (fake tools, the real node) and bootstrapped-dir handling."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cto_harness.supply_chain import (
    CatalogEntry,
    Identify,
    ToolchainError,
    ToolRequirement,
    check_toolchain,
    remove_bun,
)

from .conftest import write_exe


def _entry(*tools: ToolRequirement, bun_version: str | None = "1.4.5") -> CatalogEntry:
    return CatalogEntry(name="tc", source_url="file:///x", pin="a" * 40, build_command=["x"],
                        artifact="dist/x", identify=Identify(patterns=["x"]),
                        toolchain=list(tools), bun_version=bun_version)


NODE_BUN = (ToolRequirement(name="node", min_version="20"), ToolRequirement(name="bun"))


def test_fake_node_present_bun_missing(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    write_exe(fake / "node", "#!/bin/sh\necho v20.19.5\n")
    report = check_toolchain(_entry(*NODE_BUN), home=tmp_path / "home",
                             environ={"PATH": str(fake)})
    assert report.summary == "node v20.19.5 present, bun missing"
    assert not report.ok
    node, bun = report.tools
    assert node.ok and node.version == "20.19.5" and node.path == str(fake / "node")
    assert not bun.found and bun.path is None


def test_fake_tools_old_node_and_present_bun(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    write_exe(fake / "node", "#!/bin/sh\necho v18.20.1\n")
    write_exe(fake / "bun", "#!/bin/sh\necho 1.2.3\n")
    report = check_toolchain(_entry(*NODE_BUN), home=tmp_path / "home",
                             environ={"PATH": str(fake)})
    node, bun = report.tools
    assert not node.ok and node.meets_minimum is False and "too old (need >= 20)" in node.detail
    assert bun.ok and bun.version == "1.2.3"
    write_exe(fake / "node", "#!/bin/sh\necho v22.1.0\n")
    assert check_toolchain(_entry(*NODE_BUN), home=tmp_path / "home",
                           environ={"PATH": str(fake)}).ok


@pytest.mark.skipif(shutil.which("node") is None, reason="no node on this machine")
def test_real_node_is_detected(tmp_path: Path) -> None:
    expected = subprocess.run(["node", "--version"], capture_output=True, text=True,
                              check=True).stdout.strip()
    report = check_toolchain(_entry(ToolRequirement(name="node", min_version="20")),
                             home=tmp_path / "home", environ=dict(os.environ))
    (node,) = report.tools
    assert node.found and node.version_output == expected
    assert node.version == re.sub(r"^v", "", expected)
    assert node.ok == (int(node.version.split(".")[0]) >= 20)


def _fake_bootstrapped_bun(home: Path, version: str) -> Path:
    prefix = home / "toolchains" / f"bun-{version}"
    write_exe(prefix / "node_modules" / ".bin" / "bun", f"#!/bin/sh\necho {version}\n")
    (prefix / "toolchain.json").write_text(json.dumps({"tool": "bun", "version": version}))
    return prefix


def test_bootstrapped_bun_is_found_first_and_removable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    fake = tmp_path / "bin"
    write_exe(fake / "bun", "#!/bin/sh\necho 0.9.0\n")
    _fake_bootstrapped_bun(home, "1.0.0")
    prefix = _fake_bootstrapped_bun(home, "1.4.5")
    report = check_toolchain(_entry(ToolRequirement(name="bun")), home=home,
                             environ={"PATH": str(fake)})
    (bun,) = report.tools
    assert bun.bootstrapped and bun.version == "1.4.5"
    assert report.bootstrapped_dirs[0] == str(prefix / "node_modules" / ".bin")
    assert remove_bun("1.4.5", home=home) == prefix and not prefix.exists()
    with pytest.raises(ToolchainError, match=r"no bootstrapped bun 1\.4\.5"):
        remove_bun("1.4.5", home=home)
    (bun,) = check_toolchain(_entry(ToolRequirement(name="bun")), home=home,
                             environ={"PATH": str(fake)}).tools
    assert bun.version == "1.0.0"


def test_bootstrap_without_npm_is_a_clear_error(tmp_path: Path) -> None:
    from cto_harness.supply_chain import bootstrap_bun

    with pytest.raises(ToolchainError, match="npm is not on PATH"):
        bootstrap_bun("1.4.5", home=tmp_path / "home", environ={"PATH": str(tmp_path)})
    assert not (tmp_path / "home" / "toolchains" / "bun-1.4.5").exists()
