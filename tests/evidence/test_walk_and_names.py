"""The bounded walker, lossless name escaping and no-follow reads of agent files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.evidence.deep import make_chain, remove_tree

from cto_harness.evidence import Budget, Entry, Walker, escape_name, read_agent_file, unescape_name


@given(st.binary(max_size=64))
def test_escape_is_lossless_and_printable(raw: bytes) -> None:
    text = escape_name(raw)
    assert unescape_name(text) == raw
    text.encode("utf-8")
    assert "\n" not in text and "\r" not in text and "\x1b" not in text


def test_escape_keeps_plain_names() -> None:
    assert escape_name("src/café.py") == "src/café.py"
    assert escape_name(b"a\xffb\nc\\d") == "a\\xffb\\nc\\\\d"


def test_read_agent_file_never_follows_or_blocks(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("root:x:0:0")
    (tmp_path / "link").symlink_to(secret)
    (tmp_path / "zero").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "big").write_bytes(b"a" * 100 + b"END")
    assert read_agent_file(tmp_path / "link") is None
    assert read_agent_file(tmp_path / "zero") is None
    assert read_agent_file(tmp_path / "fifo") is None
    assert read_agent_file(tmp_path / "big", limit=3, tail=True) == b"END"
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "big").write_text("host")
    run = tmp_path / "run"
    run.mkdir()
    (run / "dir").symlink_to(outside)
    assert read_agent_file(run / "dir" / "big", root=run) is None
    assert read_agent_file(run / "dir" / "big") == b"host"


@pytest.mark.parametrize("depth", [3000])
def test_walker_is_iterative_and_bounded(tmp_path: Path, depth: int) -> None:
    make_chain(tmp_path, depth)
    try:
        entries = _walk_with_budget(tmp_path)
    finally:
        remove_tree(tmp_path / "d")
    by_reason = {e.skipped for e in entries}
    assert "too deep" in by_reason and "byte budget" in by_reason
    sparse = next(e for e in entries if e.rel == b"sparse")
    assert sparse.size == 10 * 1024**3 and sparse.sha256 is None
    assert next(e for e in entries if e.rel == b"small").sha256 is not None


def _walk_with_budget(tmp_path: Path) -> list[Entry]:
    with open(tmp_path / "sparse", "wb") as handle:
        handle.truncate(10 * 1024**3)
    (tmp_path / "small").write_bytes(b"x")
    return list(Walker(Budget(max_bytes=1024, max_depth=50)).walk(tmp_path))


def test_known_digests_are_used_without_reading_and_count_against_the_budget(tmp_path: Path) -> None:
    from cto_harness.evidence import Budget, Walker

    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "b").write_bytes(b"y" * 10)
    seen: list[bytes] = []

    def known(rel: bytes, st: os.stat_result) -> str | None:
        seen.append(rel)
        return "f" * 64 if rel == b"a" and st.st_size == 10 else None

    entries = {e.rel: e for e in Walker(Budget(max_bytes=15)).walk(tmp_path, known=known)}
    assert entries[b"a"].sha256 == "f" * 64 and seen == [b"a", b"b"]
    assert entries[b"b"].skipped == "byte budget"  # as a full re-walk would: 10 + 10 > 15
