"""Builds run from a fresh checkout at the pin, are bounded, and record dirty trees."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil
import pytest

from cto_harness.supply_chain import BuildError, ToolchainError, build, discover, list_builds

from .conftest import Harness


def test_build_from_discovery_records_dirty_tree_and_artifact(harness: Harness) -> None:
    discover("toy", home=harness.home, environ=harness.environ, entry=harness.entry())
    record = build(harness.entry(), home=harness.home, environ=harness.environ)
    assert record.ok and record.cloned_from == "discovery"
    assert record.head == harness.repo.pin
    assert record.modified_tracked_files == ["src/generated.txt"] and record.dirty
    assert "dist/toy" in record.untracked_files
    assert record.artifact is not None and record.artifact.path == "dist/toy"
    assert len(record.artifact.sha256) == 64
    build_dir = Path(record.build_dir)
    assert build_dir.parent == harness.home / "builds" / "toy"
    assert build_dir.name.startswith(harness.repo.pin + "-")
    assert "build ok" in (build_dir / "build.log").read_text()
    assert json.loads((build_dir / "build.json").read_text())["ok"] is True
    assert [t.name for t in record.toolchain.tools] == ["python3"]
    # The discovery clone was not touched by the build.
    discovery = harness.home / "discovery" / "toy" / harness.repo.pin / "checkout"
    assert not (discovery / "dist").exists()
    assert (discovery / "src" / "generated.txt").read_text() == "checked in\n"


def test_build_without_discovery_clones_the_source(harness: Harness) -> None:
    record = build(harness.entry(), home=harness.home, environ=harness.environ)
    assert record.ok and record.cloned_from == "source" and record.source_url == harness.repo.url
    second = build(harness.entry(), home=harness.home, environ=harness.environ)
    assert second.build_dir != record.build_dir
    assert len(list_builds(harness.home, "toy")) == 2


def _failed_record(harness: Harness, name: str) -> dict:  # type: ignore[type-arg]
    (folder,) = (harness.home / "builds" / name).iterdir()
    data: dict = json.loads((folder / "build.json").read_text())  # type: ignore[type-arg]
    assert data["ok"] is False
    return data


def test_build_timeout_kills_the_process_group(harness: Harness, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; "
            "c = subprocess.Popen(['sleep', '60']); "
            f"open({str(pidfile)!r}, 'w').write(str(c.pid)); time.sleep(60)")
    harness.add_entry("slow", ["python3", "-c", code], timeout=1)
    started = time.monotonic()
    with pytest.raises(BuildError, match="timed out after 1s"):
        build(harness.entry("slow"), home=harness.home, environ=harness.environ)
    assert time.monotonic() - started < 20
    data = _failed_record(harness, "slow")
    assert data["timed_out"] is True and data["exit_code"] is None
    child = int(pidfile.read_text())
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        ("import os; os.makedirs('dist/toy')", "is a directory"),
        ("import os; os.makedirs('dist'); os.symlink('/bin/sh', 'dist/toy')",
         "symlink resolving outside the build dir"),
        ("import os; os.makedirs('dist'); os.symlink(os.path.abspath('..'), 'dist/up');"
         " open('../escape', 'w').write('x')", "resolving outside the build dir"),
        ("print('nothing built')", "did not produce dist/toy"),
        ("import os; os.makedirs('dist'); open('dist/toy', 'w').write('x')", "not executable"),
        ("import sys; sys.exit(3)", "exit 3"),
    ],
)
def test_bad_artifacts_and_failures_are_refused(harness: Harness, code: str, needle: str) -> None:
    artifact = "dist/up/escape" if "dist/up" in code else "dist/toy"
    harness.add_entry("bad", ["python3", "-c", code], artifact=artifact)
    with pytest.raises(BuildError, match=needle):
        build(harness.entry("bad"), home=harness.home, environ=harness.environ)
    data = _failed_record(harness, "bad")
    assert data["artifact"] is None and data["failure"]


def test_symlink_inside_the_checkout_is_accepted(harness: Harness) -> None:
    code = ("import os, shutil; os.makedirs('dist/real'); shutil.copy('build.py', 'dist/real/t');"
            " os.chmod('dist/real/t', 0o755); os.symlink('real/t', 'dist/toy')")
    harness.add_entry("linked", ["python3", "-c", code])
    record = build(harness.entry("linked"), home=harness.home, environ=harness.environ)
    assert record.artifact is not None and record.artifact.symlink_target == "real/t"
    assert record.artifact.built_path is not None and record.artifact.built_path.endswith("dist/real/t")
    assert record.artifact.absolute == str(Path(record.build_dir) / "artifact" / "toy")


def test_missing_toolchain_refuses_before_building(harness: Harness) -> None:
    environ = {**harness.environ, "PATH": os.devnull}
    with pytest.raises(ToolchainError, match="python3 missing"):
        build(harness.entry(), home=harness.home, environ=environ)
    assert not (harness.home / "builds").exists()
