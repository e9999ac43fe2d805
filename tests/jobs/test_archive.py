"""A worker's run-dir archive: packed in one read per file, unpacked in one checked pass that trusts nothing in it."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from cto_harness.jobs._archive import ArchiveRejected, pack_run_dir, unpack_archive


def _run_dir(root: Path) -> Path:
    run = root / "attempt-1"
    (run / "workspace" / "pkg").mkdir(parents=True)
    (run / "report.json").write_text('{"verdict": "pass"}\n')
    (run / "workspace" / "pkg" / "mod.py").write_bytes(b"print('hi')\n" * 100)
    (run / "workspace" / "empty").write_bytes(b"")
    tool = run / "workspace" / "tool.sh"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o4777)
    (run / "workspace" / "caf\xe9 \udcff").write_text("odd name")
    (run / "workspace" / "outside").symlink_to("/etc/passwd")
    (run / "workspace" / "dangling").symlink_to("nowhere")
    return run


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for info, content in members:
            if content is not None:
                info.size = len(content)
            archive.addfile(info, io.BytesIO(content) if content is not None else None)
    return out.getvalue()


def _dir(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info, None


def _file(name: str, content: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    return info, content


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_packed_run_dir_unpacks_to_the_same_tree_with_every_digest_listed(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "worker")
    data, files = pack_run_dir(run)
    assert data[:2] == b"\x1f\x8b"  # gzip
    expected = {f"attempt-1/{p.relative_to(run)}": _sha(p.read_bytes())
                for p in run.rglob("*") if p.is_file() and not p.is_symlink()}
    expected["attempt-1/report.json"] = _sha((run / "report.json").read_bytes())
    assert files == expected
    dest = tmp_path / "coordinator"
    dest.mkdir()
    out = unpack_archive(data, files, "attempt-1", dest)
    assert out == dest / "attempt-1"
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert os.readlink(out / "workspace" / "outside") == "/etc/passwd"
    assert (out / "workspace" / "pkg" / "mod.py").read_bytes() == (run / "workspace" / "pkg" / "mod.py").read_bytes()
    mode = stat.S_IMODE((out / "workspace" / "tool.sh").stat().st_mode)
    assert mode == 0o755, "set-id and group/other write bits are dropped"


def test_a_missing_run_dir_packs_to_an_archive_that_is_refused(tmp_path: Path) -> None:
    data, files = pack_run_dir(tmp_path / "attempt-1")
    assert files == {}
    with pytest.raises(ArchiveRejected, match="no run dir"):
        unpack_archive(data, files, "attempt-1", tmp_path)


@pytest.mark.parametrize(("members", "files", "why"), [
    ([_dir("run"), _file("run/../escaped")], {"run/../escaped": _sha(b"x")}, "outside the run dir"),
    ([_dir("run"), _file("/tmp/abs")], {"/tmp/abs": _sha(b"x")}, "outside the run dir"),
    ([_dir("other"), _file("other/f")], {"other/f": _sha(b"x")}, "outside the run dir"),
    ([_file("run", b"x")], {"run": _sha(b"x")}, "not a directory"),
    ([_dir("run"), _file("run/a/b")], {"run/a/b": _sha(b"x")}, "before"),
    ([_dir("run"), _link("run/evil", "run/a", tarfile.LNKTYPE)], {}, "unexpected kind"),
    ([_dir("run"), _link("run/fifo", "", tarfile.FIFOTYPE)], {}, "unexpected kind"),
    ([_dir("run"), _file("run/f"), _file("run/f")], {"run/f": _sha(b"x")}, "twice"),
    ([_dir("run"), _file("run/f", b"y")], {"run/f": _sha(b"x")}, "differ at 'run/f'"),
    ([_dir("run"), _file("run/f")], {}, "differ at 'run/f'"),
    ([_dir("run")], {"run/f": _sha(b"x")}, "differ at 'run/f'"),
    ([_dir("run"), _link("run/f", "/etc/passwd")], {"run/f": _sha(b"x")}, "differ at 'run/f'"),
])
def test_an_archive_that_is_not_a_plain_run_dir_matching_its_manifest_is_refused(
        tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], files: dict[str, str], why: str) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArchiveRejected, match=why):
        unpack_archive(_tar(*members), files, "run", dest)
    assert not (tmp_path / "escaped").exists()


@pytest.mark.parametrize("link_target", ["/OUTSIDE", "..", "../.."])
def test_nothing_is_ever_written_through_a_symlink_in_the_archive(tmp_path: Path, link_target: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = str(outside) if link_target == "/OUTSIDE" else link_target
    dest = tmp_path / "dest"
    dest.mkdir()
    data = _tar(_dir("run"), _link("run/link", target), _file("run/link/planted", b"evil"))
    with pytest.raises(ArchiveRejected, match="before"):
        unpack_archive(data, {"run/link/planted": _sha(b"evil")}, "run", dest)
    assert not list(outside.iterdir()) and not (tmp_path / "planted").exists()
    assert not (dest / "planted").exists()


def test_a_symlink_then_a_file_of_the_same_name_never_writes_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    dest = tmp_path / "dest"
    dest.mkdir()
    data = _tar(_dir("run"), _link("run/f", str(victim)), _file("run/f", b"evil"))
    with pytest.raises(ArchiveRejected):
        unpack_archive(data, {"run/f": _sha(b"evil")}, "run", dest)
    assert victim.read_text() == "keep"


def test_garbage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArchiveRejected, match="unreadable"):
        unpack_archive(b"\x1f\x8b not really gzip" * 40, {}, "run", tmp_path)


def test_an_archive_of_another_run_dir_is_kept_aside_never_placed(tmp_path: Path) -> None:
    from cto_harness.jobs import AgentSpec, Trial, TrialTask
    from cto_harness.jobs._ray import place_archive

    job_dir = tmp_path / "job"
    task = TrialTask(trial=Trial("fixer", "r1-string-slugify", 1),
                     run_dir=job_dir / "trials/fixer/r1-string-slugify/attempt-1",
                     agent=AgentSpec(name="fixer", provider="fake"), environ={}, log_dir=job_dir / "logs")
    data = _tar(_dir("attempt-2"), _file("attempt-2/report.json"))
    manifest = {"dir_name": "attempt-2", "files": {"attempt-2/report.json": _sha(b"x")}}
    problem = place_archive(task, job_dir, data, manifest)
    assert problem is not None and "holds run dir 'attempt-2', not 'attempt-1'" in problem
    assert not task.run_dir.exists()
    kept = sorted(p.name for p in (job_dir / "quarantine/fixer/r1-string-slugify").iterdir())
    assert len(kept) == 2 and kept[1] == kept[0] + ".tar.gz"
    assert (job_dir / "quarantine/fixer/r1-string-slugify" / kept[1]).read_bytes() == data
