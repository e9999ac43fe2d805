"""remove_tree: any depth, read-only dirs, never follows a symlink out."""

from __future__ import annotations

import os
from pathlib import Path

from tests.evidence.deep import make_chain

from cto_harness._tree import remove_tree


def test_removes_a_chain_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    make_chain(root, 1500)
    remove_tree(root)
    assert not root.exists()


def test_removes_read_only_dirs_and_keeps_what_a_symlink_points_at(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    root = tmp_path / "tree"
    (root / "ro" / "sub").mkdir(parents=True)
    (root / "ro" / "sub" / "f").write_text("x")
    (root / "link").symlink_to(outside)
    os.chmod(root / "ro" / "sub", 0o500)
    os.chmod(root / "ro", 0o500)
    remove_tree(root)
    assert not root.exists()
    assert (outside / "keep.txt").read_text() == "keep"


def test_a_missing_path_or_a_file_is_fine(tmp_path: Path) -> None:
    remove_tree(tmp_path / "missing")
    single = tmp_path / "file"
    single.write_text("x")
    remove_tree(single)
    assert not single.exists()
