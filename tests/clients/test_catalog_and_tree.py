"""The pinned client catalog and the tree digests that pin launcher-admitted clients."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cto_harness.evidence import sha256_file
from cto_harness.supply_chain import (
    ClientCatalogError,
    client_spec,
    load_clients,
    read_launcher,
    tree_sha256,
    verify_launcher,
)
from cto_harness.supply_chain._client_install import catalog_entry_for
from cto_harness.supply_chain._client_tree import INSTALL_RECORD, LauncherPins, render_launcher


def test_catalog_pins_the_four_clients_exactly() -> None:
    clients = load_clients()
    assert set(clients) == {"claude-code", "codex", "mini-swe-agent", "pi"}
    assert clients["claude-code"].version.startswith("2.1.")
    assert clients["codex"].version.startswith("0.169.")
    assert clients["pi"].version.startswith("0.73.")
    assert clients["mini-swe-agent"].version.startswith("2.4.")
    assert clients["mini-swe-agent"].kind == "pypi" and clients["mini-swe-agent"].integrity.startswith("sha256:")
    for name in ("claude-code", "codex", "pi"):
        assert clients[name].kind == "npm" and clients[name].integrity.startswith("sha512-")


def test_unknown_client_lists_the_known_ones() -> None:
    with pytest.raises(ClientCatalogError, match="known: claude-code, codex, mini-swe-agent, pi"):
        client_spec("cursor")


def test_admission_entry_carries_the_registry_pin() -> None:
    spec = client_spec("pi")
    entry = catalog_entry_for(spec, "cto-harness-pi", spec.integrity)
    assert entry.pin == spec.integrity
    assert entry.source_url.startswith("https://registry.npmjs.org/@mariozechner/pi-coding-agent/")
    assert entry.artifact_name == "cto-harness-pi"


def _tree(root: Path) -> Path:
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("X = 1\n")
    (root / "pkg" / "__pycache__" / "mod.pyc").write_bytes(b"bytecode")
    os.symlink("pkg/mod.py", root / "link")
    return root


def test_tree_digest_sees_content_symlinks_and_modes_not_bytecode(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    first = tree_sha256(root)
    (root / "pkg" / "__pycache__" / "mod.pyc").write_bytes(b"other bytecode")
    assert tree_sha256(root) == first
    (root / "pkg" / "mod.py").write_text("X = 2\n")
    second = tree_sha256(root)
    assert second != first
    (root / "link").unlink()
    os.symlink("elsewhere", root / "link")
    assert tree_sha256(root) != second
    third = tree_sha256(root)
    (root / "pkg" / "mod.py").chmod(0o755)
    assert tree_sha256(root) != third


def _launcher(tmp_path: Path) -> tuple[Path, Path]:
    root = _tree(tmp_path / "prefix")
    launcher = root / "cto-harness-demo"
    runtime = Path("/bin/sh").resolve()
    pins = LauncherPins(tree=root, tree_sha256=tree_sha256(root, exclude=frozenset({launcher.name, INSTALL_RECORD})),
                        runtime=runtime, runtime_sha256=sha256_file(runtime))
    launcher.write_text(render_launcher(title="demo 1.0.0", pins=pins, argv=["/bin/echo", "hi"], python=False))
    launcher.chmod(0o755)
    return root, launcher


def test_launcher_round_trip_and_tamper_detection(tmp_path: Path) -> None:
    root, launcher = _launcher(tmp_path)
    pins = read_launcher(launcher)
    assert pins is not None and pins.tree == root
    assert verify_launcher(launcher) is None
    (root / INSTALL_RECORD).write_text("{}")  # the install record is not part of the tree
    assert verify_launcher(launcher) is None
    (root / "pkg" / "mod.py").write_text("X = 'tampered'\n")
    problem = verify_launcher(launcher)
    assert problem is not None and "changed since it was admitted" in problem


def test_a_plain_executable_is_not_a_launcher(tmp_path: Path) -> None:
    exe = tmp_path / "tool"
    exe.write_text("#!/bin/sh\necho hi\n")
    assert read_launcher(exe) is None
    assert verify_launcher(exe) is None
