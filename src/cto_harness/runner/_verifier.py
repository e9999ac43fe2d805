"""The isolated verifier: grade a fresh pristine copy plus the agent's patch, never the workspace.

What the agent left in its workspace is evidence, not something to run. The verifier
copies the pristine fixture, applies the agent's patch with harness-side git (no agent
configuration exists there to run), leaves out every change to the grading tests and to
files Python or pytest load on their own (``DROPPED_NAMES``, ``.pth`` files, new files and
``__init__.py`` in a test directory, new test files), and refuses a patch that cannot carry
the code it stands for (a nested repository, a symlink leading out of the copy). It then runs pytest on the
copy inside the sandbox (no network, writable: the copy and a private tmp), in isolated
mode with plugin autoload off, bounded in time and output, and reads each test's outcome
from a channel its own plugin writes (``_verifier_plugin.py``). A pass needs exit 0, a
finished session, no collection error and every expected test reported passed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import posixpath
import re
import shutil
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from cto_harness._tree import remove_tree
from cto_harness.evidence import TestCounts, atomic_write_json
from cto_harness.fixtures import (
    Fixture,
    FixtureError,
    StatKey,
    copy_repo,
    copy_repo_sharing,
    read_pristine,
    shareable_subtrees,
    stage_files,
    stat_key,
)
from cto_harness.proc import (
    ProcessResult,
    Sandbox,
    choose_sandbox,
    git_config_args,
    run_bounded,
    run_captured,
    wrap,
)
from cto_harness.runner._held_grader import PLUGIN_SCRIPT, HeldGrader, grading_binds, grading_env, hold_grader
from cto_harness.runner._workspace import git_env

CONFIG_MARKERS = {"pytest.toml": b"", ".pytest.toml": b"", "pytest.ini": b"", ".pytest.ini": b"",
                  "pyproject.toml": b"[tool.pytest", "tox.ini": b"[pytest]", "setup.cfg": b"[tool:pytest]"}
"""The files pytest adopts as its config, in its own order of preference (each when it holds the marker)."""
DROPPED_NAMES = frozenset({"conftest.py", *CONFIG_MARKERS, "sitecustomize.py", "usercustomize.py"})
"""Files Python or pytest load without the code under test importing them: never applied."""
MAX_OUTPUT_BYTES = 4 * 1024 * 1024
MAX_CHANNEL_BYTES = 16 * 1024 * 1024
MAX_LISTED_MISSING = 100
GIT_TIMEOUT_S = 120.0
EXPECTED_CACHE_FORMAT = 2
COPY_INSTEAD_MAX_FILES = 16
COPY_INSTEAD_MAX_BYTES = 256 * 1024 * 1024
"""A held grader without binds grades a fixture whose shareable subtrees are at most this big."""
_GITLINK = re.compile(rb"^(?:new file mode|deleted file mode|old mode|new mode) 160000$"
                      rb"|^index [0-9a-f]+\.\.[0-9a-f]+ 160000$", re.MULTILINE)


class VerifierRefusal(Exception):
    """The change cannot be graded faithfully; the message says why (the run fails closed)."""


@dataclass
class Verification:
    """What the verifier saw; ``passed`` only when every rule held."""

    argv: list[str]
    timeout_s: float
    result: ProcessResult | None = None
    passed: bool = False
    problems: list[str] = field(default_factory=list)
    counts: TestCounts | None = None
    expected: list[str] = field(default_factory=list)
    expected_source: Literal["manifest", "reference"] | None = None
    passed_ids: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def verify_change(fixture: Fixture, patch: bytes, out_dir: Path, sandbox: Sandbox, harness_home: Path,
                  *, tag: str, held: HeldGrader | None = None) -> Verification:
    """Grade ``patch`` on a fresh copy of ``fixture`` under ``out_dir``; never raises for agent input.

    ``held``: a grading sandbox started earlier (``hold_grader``), used when it fits this
    grading exactly (same sandbox, same shared subtrees), else closed; the caller closes it too.

    Raises:
        HarnessInterrupted: not raised; an interrupted run sets ``result.interrupted``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    check = _run_tests(fixture, patch, out_dir, sandbox, tag=tag, held=held)
    if check.result is None or check.result.interrupted:
        _write_summary(out_dir, check)
        return check
    try:
        check.expected, check.expected_source = _expected(fixture, out_dir / "reference", sandbox, harness_home,
                                                         tag=f"{tag}-reference")
    except VerifierRefusal as exc:
        check.problems.append(str(exc))
    passed = set(check.passed_ids)
    check.missing = [nodeid for nodeid in check.expected if nodeid not in passed]
    if check.expected and check.missing:
        shown = ", ".join(check.missing[:3]) + (" ..." if len(check.missing) > 3 else "")
        check.problems.append(f"{len(check.missing)} of {len(check.expected)} expected tests were not "
                              f"reported passed: {shown}")
    check.passed = not check.problems and bool(check.expected)
    _write_summary(out_dir, check)
    return check


def fit_grader(grader: HeldGrader | None, fixture: Fixture, environ: Mapping[str, str], *,
               tag: str) -> HeldGrader | None:
    """A held grader for ``fixture``: ``grader`` when its binds fit, else a new one (or None).

    Binds are fixed when a sandbox starts: the fixture's shareable subtrees (those an agent's
    patch usually does not touch) are bound now; a patch that touches one makes the
    verifier fall back to a cold sandbox.
    """
    try:
        sandbox = choose_sandbox(environ)
        shared = shareable_subtrees(fixture) if sandbox.confined else []
    except Exception:  # the cold path grades the same (and the run reports a bad fixture or sandbox)
        if grader is not None:
            grader.close()
        return None
    if grader is not None and grader.fits(sandbox, fixture.repo_dir, shared):
        return grader
    if grader is not None and grader.fits(sandbox, fixture.repo_dir, []) and _cheap_to_copy(fixture, shared):
        return grader  # started before the fixture was known: copying a few big files beats a restart
    if grader is not None:
        grader.close()
    return hold_grader(environ, sandbox=sandbox, shared=[(fixture.repo_dir, rel) for rel in shared], tag=tag)


def _cheap_to_copy(fixture: Fixture, shared: Sequence[str]) -> bool:
    """Shared subtrees holding a few files (one 50 MB file, not a 5,000-file dir) are copied instead.

    Copying ``COPY_INSTEAD_MAX_BYTES`` (copy_file_range, page cache) costs less than starting
    a grading sandbox again once the fixture is known (~150 ms of interpreter and pytest).
    """
    inside = _files_under(fixture, shared)
    if len(inside) > COPY_INSTEAD_MAX_FILES:
        return False
    try:
        size = sum(os.lstat(fixture.repo_dir / rel).st_size for rel in inside)
    except OSError:
        return False
    return size <= COPY_INSTEAD_MAX_BYTES


def dropped_change(rel: str, fixture: Fixture) -> bool:
    """True for a path whose change the verifier never applies."""
    path = PurePosixPath(rel)
    name = path.name
    if rel in fixture.grading_tests or name in DROPPED_NAMES or name.endswith(".pth"):
        return True
    if name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py")):
        return True
    in_test_dir = any(rel == d or rel.startswith(d + "/") for d in _test_dirs(fixture))
    # In a test directory only edits to files the fixture ships (code living beside its tests) apply.
    return in_test_dir and (name == "__init__.py" or rel not in fixture.files)


def _test_dirs(fixture: Fixture) -> set[str]:
    return {parent for rel in fixture.grading_tests if (parent := posixpath.dirname(rel))}


def _files_under(fixture: Fixture, subtrees: Sequence[str]) -> list[str]:
    """The fixture's files in (or equal to) one of ``subtrees``."""
    return [rel for rel in fixture.files if any(rel == p or rel.startswith(p + "/") for p in subtrees)]


def _run_tests(fixture: Fixture, patch: bytes, out_dir: Path, sandbox: Sandbox, *, tag: str,
               held: HeldGrader | None = None) -> Verification:
    tree, tmp = out_dir / "tree", out_dir / "tmp"
    argv = _pytest_argv(fixture, tree)
    check = Verification(argv=argv, timeout_s=fixture.test_timeout_s)
    for directory in (tree, tmp):
        remove_tree(directory)
    tmp.mkdir(parents=True)
    try:
        try:
            paths, binary = _patch_paths(patch, tmp)
            shared = _held_copy(held, fixture, sandbox, paths)
            if shared is not None and held is not None:
                tree, tmp = held.tree, held.tmp
            elif sandbox.confined:
                # Sandboxed, large untouched subtrees are not copied: the fixture's own are bound
                # read-only over placeholders (the graded code cannot write them).
                shared = copy_repo_sharing(fixture, tree, paths) or []
            else:
                shared = []
                copy_repo(fixture, tree)
            check.dropped = _apply(patch, fixture, tree, tmp, paths, binary)
        except (FixtureError, VerifierRefusal) as exc:
            check.problems.append(str(exc))
            return check
        check.argv = argv = _pytest_argv(fixture, tree, empty_ini=tmp / "empty-pytest.ini")
        channel = tmp / "results.jsonl"
        channel.write_bytes(b"")
        reader = os.open(channel, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        stdout, stderr = out_dir / "stdout.txt", out_dir / "stderr.txt"
        try:
            if held is not None and tree == held.tree:
                # The plugin's own arguments (after the interpreter, its flags and the script).
                check.result = held.release(argv[4:], timeout_s=fixture.test_timeout_s, stdout_path=stdout,
                                            stderr_path=stderr, max_output_bytes=MAX_OUTPUT_BYTES)
            else:
                check.result = run_bounded(
                    wrap(argv, sandbox, **grading_binds(tree, tmp), network="none", cwd=tree,
                         overlaid=[(fixture.repo_dir / rel, tree / rel) for rel in shared]),
                    cwd=tree, env=grading_env(tmp, channel), timeout_s=fixture.test_timeout_s, tag=tag,
                    stdout_path=stdout, stderr_path=stderr, max_output_bytes=MAX_OUTPUT_BYTES)
            raw = _read_bounded(reader)
        finally:
            os.close(reader)
        (out_dir / "channel.jsonl").write_bytes(raw[:MAX_CHANNEL_BYTES])
        _judge(check, raw)
        return check
    finally:
        for directory in (tree, tmp, out_dir / "tree", out_dir / "tmp"):
            remove_tree(directory)


def _held_copy(held: HeldGrader | None, fixture: Fixture, sandbox: Sandbox, paths: list[str]) -> list[str] | None:
    """Copy the fixture into the held grader's tree when it fits; the shared subtrees, else None."""
    staging = _STAGING.pop(held.scratch, None) if held is not None else None
    if staging is not None:
        staging.thread.join()
    if held is None:
        return None
    if held.fits(sandbox, fixture.repo_dir, [rel for _, rel in held.shared]) and held.pristine():
        if not held.shared:  # no binds: the whole fixture is copied (what fit_grader chose)
            if staging is None or not _use_staged(staging, fixture, held.tree, paths):
                copy_repo(fixture, held.tree)
            return []
        shared = copy_repo_sharing(fixture, held.tree, paths, premade=[rel for _, rel in held.shared])
        if shared is not None:
            return shared
    held.close()
    return None


@dataclass
class _Staging:
    """The few big files of a fixture, copied for a held grader while the agent runs (``stage_held_copy``)."""

    shared: list[str]
    root: Path
    thread: threading.Thread
    files: dict[str, tuple[StatKey, os.stat_result]] | None = None


_STAGING: dict[Path, _Staging] = {}
"""Held grader scratch dir -> its staged copy (only the harness reaches the scratch dir)."""
STAGED_DIR = "staged"


def stage_held_copy(held: HeldGrader | None, fixture: Fixture) -> None:
    """Start copying the shareable big files (``fit_grader``'s copy-instead case) beside the held tree.

    The copy happens while the agent runs instead of after it. ``_held_copy`` uses it only
    when the patch leaves those subtrees alone and each fixture file still has the lstat it
    had while it was copied (the digest's rule); else it copies as before.
    """
    if held is None or held.shared or not held.sandbox.confined:
        return
    try:
        shared = shareable_subtrees(fixture)
    except FixtureError:
        return
    if not shared or not _cheap_to_copy(fixture, shared):
        return
    rels = _files_under(fixture, shared)
    root = held.scratch / STAGED_DIR
    try:
        root.mkdir()
    except OSError:
        return

    def stage() -> None:
        staging.files = stage_files(fixture, rels, root)

    staging = _Staging(shared=shared, root=root, thread=threading.Thread(target=stage, name="held-stage", daemon=True))
    _STAGING[held.scratch] = staging
    staging.thread.start()


def _use_staged(staging: _Staging, fixture: Fixture, tree: Path, paths: list[str]) -> bool:
    """Copy the fixture into the empty ``tree`` with the staged files moved in; False: nothing was written."""
    files = staging.files
    if files is None or shareable_subtrees(fixture, paths) != staging.shared:
        return False
    for rel, (key, copied) in files.items():
        try:
            unchanged = (stat_key(os.lstat(fixture.repo_dir / rel)) == key
                         and stat_key(os.lstat(staging.root / rel)) == stat_key(copied))
        except OSError:
            unchanged = False
        if not unchanged:
            return False
    if copy_repo_sharing(fixture, tree, paths) != staging.shared:
        raise FixtureError(f"{fixture.repo_dir}: changed while it was copied for grading")
    for rel in staging.shared:  # each placeholder (an empty file or directory) gives way to the staged copy
        placeholder = tree / rel
        # Removed first, not renamed over: ext4 flushes a file renamed over another (auto_da_alloc),
        # which wrote the 50 MB out to disk while the tests ran (and made removing it slow).
        if placeholder.is_dir():
            placeholder.rmdir()
        else:
            placeholder.unlink()
        os.rename(staging.root / rel, placeholder)
    return True


def _pytest_argv(fixture: Fixture, tree: Path, *, empty_ini: Path | None = None) -> list[str]:
    argv = [sys.executable, "-I", "-B", str(PLUGIN_SCRIPT), str(tree), "-p", "no:cacheprovider"]
    for plugin in fixture.test_plugins:
        argv += ["-p", plugin]
    if empty_ini is not None and not _names_config(fixture.test_command[3:]) and not _nested_config(fixture):
        # pytest is told its config file: it never looks for one in the graded copy (where the
        # agent may have added a name pytest prefers) or in a directory above it. (A fixture with
        # a config file below its root keeps pytest's own search, over pristine config files only:
        # every change to a file of such a name is dropped.)
        config = _root_config(fixture)
        if config is None:
            empty_ini.write_text("[pytest]\n", encoding="utf-8")
        argv += ["-c", str(tree / config if config is not None else empty_ini), "--rootdir", str(tree)]
    return argv + list(fixture.test_command[3:])


def _names_config(args: Sequence[str]) -> bool:
    """The fixture's own test command already chooses the config file or the rootdir."""
    return any(arg in ("-c", "--config-file", "--rootdir") or arg.startswith(("--config-file=", "--rootdir="))
               or (arg.startswith("-c") and len(arg) > 2) for arg in args)


def _nested_config(fixture: Fixture) -> bool:
    return any("/" in rel and PurePosixPath(rel).name in CONFIG_MARKERS for rel in fixture.files)


def _root_config(fixture: Fixture) -> str | None:
    """The fixture's root file pytest would adopt as its config, by pytest's order (None: none)."""
    for name, marker in CONFIG_MARKERS.items():
        if name in fixture.files:
            try:
                if marker in read_pristine(fixture, name):
                    return name
            except FixtureError:
                continue
    return None


def _patch_paths(patch: bytes, scratch: Path) -> tuple[list[str], frozenset[str]]:
    """Every path the patch touches, and those of its binary changes (read from the patch alone,
    before any copy exists).

    Raises:
        VerifierRefusal: a gitlink, or a patch git cannot parse.
    """
    gitlink = _GITLINK.search(patch)
    if gitlink is not None:
        raise VerifierRefusal(
            "the change holds a nested git repository (gitlink, mode 160000): patch.diff records only its "
            "commit id, not its code, so it cannot be graded")
    if not patch.strip():
        return [], frozenset()
    patch_file = scratch / "agent.patch"
    patch_file.write_bytes(patch)
    try:
        entries = [entry for entry in _git_apply(["--numstat", "-z"], patch_file, scratch).split(b"\0")
                   if entry.strip()]
    finally:
        patch_file.unlink(missing_ok=True)
    binary = frozenset(_numstat_path(entry) for entry in entries if entry.startswith(b"-\t-\t"))
    return sorted({_numstat_path(entry) for entry in entries}), binary


def _apply(patch: bytes, fixture: Fixture, tree: Path, scratch: Path, paths: list[str],
           binary: frozenset[str] = frozenset()) -> list[str]:
    """Apply the patch minus dropped changes to ``tree``; return the dropped paths.

    A binary file the patch adds or modifies is dropped too (its pristine version, if any, is
    put back): its content is not readable evidence, and a compiled module beside a source
    file (``strings.cpython-311-x86_64-linux-gnu.so``) replaces it at import. Deleting one is
    applied.

    Raises:
        VerifierRefusal: a patch git cannot apply, or a symlink leading out of the copy.
    """
    if not paths:
        return []
    patch_file = scratch / "agent.patch"
    patch_file.write_bytes(patch)
    try:
        dropped = [p for p in paths if dropped_change(p, fixture)]
        if len(dropped) < len(paths):
            _git_apply([f"--exclude={_glob_escape(p)}" for p in dropped], patch_file, tree)
    finally:
        patch_file.unlink(missing_ok=True)
    for rel in sorted(binary.difference(dropped)):
        target = tree / rel
        if not os.path.lexists(target):
            continue  # deleted
        target.unlink()
        if rel in fixture.files:
            shutil.copy2(fixture.repo_dir / rel, target, follow_symlinks=False)
        dropped.append(rel)
    _refuse_escaping_symlinks(tree)
    return sorted(dropped)


def _git_apply(args: Sequence[str], patch_file: Path, tree: Path) -> bytes:
    env = git_env()
    env["GIT_CEILING_DIRECTORIES"] = str(tree.parent)
    argv = ["git", "--no-pager", *git_config_args(), "apply", "--whitespace=nowarn", *args, str(patch_file)]
    done = run_captured(argv, cwd=tree, env=env, timeout_s=GIT_TIMEOUT_S, max_output_bytes=MAX_CHANNEL_BYTES)
    if not done.ok or done.result.stdout.truncated:
        detail = done.text("stderr").strip().splitlines()
        why = "timed out" if done.timed_out else (detail[-1] if detail else f"exit {done.returncode}")
        raise VerifierRefusal(f"the agent's patch does not apply to a pristine copy of the fixture: {why}")
    return done.stdout


def _numstat_path(entry: bytes) -> str:
    parts = entry.split(b"\t", 2)
    return os.fsdecode(parts[2] if len(parts) == 3 else entry)


def _glob_escape(path: str) -> str:
    return re.sub(r"([\\*?\[])", r"\\\1", path)


def _refuse_escaping_symlinks(tree: Path) -> None:
    root = tree.resolve()
    pending = [str(root)]  # an explicit stack: os.walk recurses once per level (a deep patch)
    while pending:
        directory = pending.pop()
        with os.scandir(directory) as entries:
            links = []
            for entry in entries:
                if entry.is_symlink():
                    links.append(entry.name)
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
        for name in links:
            path = Path(directory, name)
            target = os.readlink(path)
            lexical = Path(posixpath.normpath(posixpath.join(directory, target)))
            try:
                inside = path.resolve(strict=True).is_relative_to(root)
            except (OSError, RuntimeError):
                inside = False
            if os.path.isabs(target) or not lexical.is_relative_to(root) or not inside:
                rel = path.relative_to(root).as_posix()
                raise VerifierRefusal(f"the change adds a symlink {rel!r} -> {target!r} that leads out of the "
                                      "graded copy (or nowhere): its content is not in the evidence")


def _read_bounded(fd: int) -> bytes:
    chunks, total = [], 0
    while total <= MAX_CHANNEL_BYTES and (chunk := os.read(fd, 1024 * 1024)):
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _judge(check: Verification, raw: bytes) -> None:
    """Fill outcomes from the channel and list every reason the run is not a pass."""
    result = check.result
    assert result is not None
    if len(raw) > MAX_CHANNEL_BYTES:
        check.problems.append(f"the result channel exceeded {MAX_CHANNEL_BYTES} bytes")
        return
    records = _records(raw)
    finish = next((r for r in records if r.get("kind") == "finish"), None)
    phases: dict[str, list[tuple[str, str]]] = {}
    collect_errors = [str(r.get("nodeid")) for r in records if r.get("kind") == "collect_error"]
    for record in records:
        if record.get("kind") == "test":
            phases.setdefault(str(record.get("nodeid")), []).append((str(record.get("when")),
                                                                     str(record.get("outcome"))))
    counts = {"passed": 0, "failed": 0, "errors": len(collect_errors), "skipped": 0}
    for nodeid, seen in phases.items():
        if any(outcome == "failed" for when, outcome in seen if when != "call"):
            counts["errors"] += 1
        elif ("call", "failed") in seen:
            counts["failed"] += 1
        elif ("call", "passed") in seen:
            counts["passed"] += 1
            check.passed_ids.append(nodeid)
        else:
            counts["skipped"] += 1
    check.counts = TestCounts(**counts)
    if result.timed_out:
        check.problems.append(f"the tests timed out after {check.timeout_s:g} s")
    elif result.exit_code != 0:
        check.problems.append(f"the test command exited {result.exit_code}")
    if finish is None:
        check.problems.append("pytest never finished its session (the result channel has no end record): "
                              "the process exited early, e.g. at import")
    elif finish.get("exitstatus") != 0:
        check.problems.append(f"pytest reported exit status {finish.get('exitstatus')} through the result channel")
    tampered: set[str] = set()
    for record in records:
        if record.get("kind") == "tampered":
            what = record.get("what")
            tampered.update(map(str, what) if isinstance(what, list) else [str(what)])
    if tampered:
        shown = ", ".join(sorted(tampered)[:3]) + (" ..." if len(tampered) > 3 else "")
        check.problems.append(f"the code under test replaced pytest's test-running or reporting code ({shown}): "
                              "its outcomes cannot be trusted")
    if collect_errors:
        check.problems.append(f"{len(collect_errors)} collection error(s): {', '.join(collect_errors[:3])}")
    if counts["failed"] or counts["errors"] > len(collect_errors):
        check.problems.append(f"{counts['failed']} test(s) failed, {counts['errors'] - len(collect_errors)} "
                              "errored")


def _records(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for line in raw.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def _expected(fixture: Fixture, work: Path, sandbox: Sandbox, harness_home: Path,
              *, tag: str) -> tuple[list[str], Literal["manifest", "reference"]]:
    """The node ids that must pass: declared in the manifest, else derived once per fixture digest.

    Raises:
        VerifierRefusal: the reference solution does not pass in the verifier.
    """
    if fixture.expected_tests is not None:
        return list(fixture.expected_tests), "manifest"
    cache = harness_home / "verifier" / "expected" / f"{fixture.digest}.json"
    key = {"format": EXPECTED_CACHE_FORMAT, "fixture_digest": fixture.digest, "pytest": _pytest_version()}
    try:
        cached = json.loads(cache.read_text("utf-8"))
        if {k: cached.get(k) for k in key} == key and cached["ids"] and isinstance(cached["ids"], list):
            return [str(i) for i in cached["ids"]], "reference"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    try:
        solution = fixture.solution_patch.read_bytes()
    except OSError as exc:
        raise VerifierRefusal(f"cannot read the fixture's reference solution: {exc.strerror}") from None
    reference = _run_tests(fixture, solution, work, sandbox, tag=tag)
    if reference.result is not None and reference.result.interrupted:
        raise VerifierRefusal("interrupted while deriving the expected tests")
    if reference.problems or not reference.passed_ids:
        why = reference.problems[0] if reference.problems else "no test passed"
        raise VerifierRefusal(f"cannot derive the expected tests: the fixture's reference solution does not "
                              f"pass in the verifier ({why})")
    ids = sorted(reference.passed_ids)
    with contextlib.suppress(OSError):  # an unwritable home only costs a re-derivation next time
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cache, {**key, "ids": ids}, durable=False)  # a cache: lost, it is derived again
    return ids, "reference"


def _pytest_version() -> str:
    """Node ids of parametrized tests may change with pytest: the cache is per pytest.

    The digest of the ``_pytest/_version.py`` the grader's interpreter would import (its
    version, as pytest's build wrote it), found without importing pytest or scanning the
    environment's metadata (``importlib.metadata``: ~10 ms on every run).
    """
    try:
        spec = importlib.util.find_spec("_pytest")
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        data = (Path(locations[0]) / "_version.py").read_bytes() if locations else b""
    except (ImportError, ValueError, OSError):
        data = b""
    return f"sha256:{hashlib.sha256(data).hexdigest()}" if data else "unknown"


def _write_summary(out_dir: Path, check: Verification) -> None:
    atomic_write_json(out_dir / "verifier.json", {
        "passed": check.passed,
        "problems": check.problems,
        "expected_source": check.expected_source,
        "expected": check.expected,
        "passed_ids": check.passed_ids,
        "missing": check.missing,
        "dropped_changes": check.dropped,
        "argv": check.argv,
    }, durable=False)  # see atomic_write_bytes: report.json records its digest
