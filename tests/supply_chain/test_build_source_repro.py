"""Builds use what discovery verified, install dependencies first, and are reproducible."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from cto_harness.cli.provider import provider_group
from cto_harness.supply_chain import (
    BuildError,
    admit,
    build,
    build_checkout,
    discover,
    sha256_file,
    verify_reproducible,
)

from .conftest import Harness, git

UNREACHABLE = "file:///nonexistent/cto-harness-test/toy.git"

# The artifact embeds the directory it was built in (as bun --compile embeds a path).
EMBEDS_CWD = ("import os, pathlib; exec(open('build.py').read()); "
              "p = pathlib.Path('dist/toy'); p.write_text(p.read_text() + '# built in ' + os.getcwd() + chr(10))")
EMBEDS_TIME = ("import time, pathlib; exec(open('build.py').read()); "
               "p = pathlib.Path('dist/toy'); p.write_text(p.read_text() + '# ' + str(time.time_ns()) + chr(10))")
EMBEDS_EPOCH = ("import os, pathlib; exec(open('build.py').read()); p = pathlib.Path('dist/toy'); "
                "p.write_text(p.read_text() + '# epoch ' + os.environ['SOURCE_DATE_EPOCH'] + chr(10))")


def test_build_and_admit_use_the_discovered_source_and_pin(harness: Harness) -> None:
    # The catalog names an unreachable URL and the older pin; discovery found the source at HEAD.
    harness.add_entry("offline", url=UNREACHABLE)
    discover("offline", home=harness.home, environ=harness.environ, entry=harness.entry("offline"),
             source=harness.repo.url, pin=harness.repo.head)
    record = build(harness.entry("offline"), home=harness.home, environ=harness.environ)
    assert (record.pin, record.head, record.source_url) == (harness.repo.head, harness.repo.head, harness.repo.url)
    assert (record.pinned_by, record.cloned_from) == ("discovery", "discovery")
    admission, _ = admit(harness.entry("offline"), home=harness.home, environ=harness.environ)
    assert (admission.pin, admission.source_url) == (harness.repo.head, harness.repo.url)
    statement = json.loads(Path(admission.provenance).read_text())
    assert statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"] == {
        "gitCommit": harness.repo.head}


def test_operator_source_and_pin_override_discovery(harness: Harness) -> None:
    harness.add_entry("offline", url=UNREACHABLE)
    discover("offline", home=harness.home, environ=harness.environ, entry=harness.entry("offline"),
             source=harness.repo.url, pin=harness.repo.head)
    record = build(harness.entry("offline"), home=harness.home, environ=harness.environ,
                   source=harness.repo.url, pin=harness.repo.pin)
    assert (record.pin, record.pinned_by, record.cloned_from) == (harness.repo.pin, "operator", "source")


def test_supplied_binary_records_the_discovered_pin(harness: Harness, tmp_path: Path) -> None:
    from .conftest import toy_exe

    harness.add_entry("offline", url=UNREACHABLE)
    discover("offline", home=harness.home, environ=harness.environ, entry=harness.entry("offline"),
             source=harness.repo.url, pin=harness.repo.head)
    record, _ = admit(harness.entry("offline"), home=harness.home, environ=harness.environ,
                      binary=toy_exe(tmp_path / "toy"))
    assert (record.pin, record.source_url, record.built_here) == (harness.repo.head, harness.repo.url, False)


def test_without_discovery_the_unreachable_catalog_source_fails(harness: Harness) -> None:
    harness.add_entry("offline", url=UNREACHABLE)
    with pytest.raises(BuildError, match="checkout failed"):
        build(harness.entry("offline"), home=harness.home, environ=harness.environ)


def test_install_step_runs_first_and_the_lockfile_digest_is_recorded(harness: Harness) -> None:
    install = ["python3", "-c", "open('installed.txt', 'w').write('deps')"]
    command = ["python3", "-c", "import os; assert os.path.exists('installed.txt'); exec(open('build.py').read())"]
    harness.add_entry("deps", command, extra=f'install_command = {json.dumps(install)}\nlockfile = "build.py"\n')
    record = build(harness.entry("deps"), home=harness.home, environ=harness.environ)
    assert record.ok and record.install_command == install and record.install_exit_code == 0
    assert record.lockfile is not None and record.lockfile.path == "build.py"
    assert record.lockfile.sha256 == sha256_file(harness.repo.path / "build.py")
    log = Path(record.log).read_text()
    assert log.index("$ python3 -c open('installed.txt'") < log.index("build ok")


def test_failed_install_step_is_recorded_and_stops_the_build(harness: Harness) -> None:
    install = ["python3", "-c", "import sys; sys.exit(7)"]
    harness.add_entry("deps", ["python3", "-c", "open('built', 'w')"],
                      extra=f'install_command = {json.dumps(install)}\nlockfile = "no.lock"\n')
    with pytest.raises(BuildError, match="install step failed: exit 7"):
        build(harness.entry("deps"), home=harness.home, environ=harness.environ)
    (folder,) = [p for p in (harness.home / "builds" / "deps").iterdir()]
    data = json.loads((folder / "build.json").read_text())
    assert data["install_exit_code"] == 7 and data["exit_code"] is None
    assert data["lockfile"] == {"path": "no.lock", "sha256": None}
    assert not (build_checkout("deps", harness.repo.pin, environ=harness.environ) / "built").exists()


def test_builds_of_one_pin_share_a_pin_derived_path_and_commit_time(harness: Harness) -> None:
    harness.add_entry("cwd", ["python3", "-c", EMBEDS_CWD])
    first = build(harness.entry("cwd"), home=harness.home, environ=harness.environ)
    second = build(harness.entry("cwd"), home=harness.home, environ=harness.environ)
    checkout = build_checkout("cwd", harness.repo.pin, environ=harness.environ)
    assert first.checkout == second.checkout == str(checkout)
    assert first.build_dir != second.build_dir
    assert first.artifact and second.artifact
    assert first.artifact.sha256 == second.artifact.sha256
    # Each build keeps its own copy: the shared checkout is rebuilt next time.
    assert first.artifact.absolute != second.artifact.absolute
    assert sha256_file(Path(first.artifact.absolute)) == first.artifact.sha256
    commit_time = int(git("log", "-1", "--format=%ct", harness.repo.pin, cwd=harness.repo.path))
    assert first.source_date_epoch == commit_time


def test_source_date_epoch_is_the_commit_time(harness: Harness) -> None:
    harness.add_entry("epoch", ["python3", "-c", EMBEDS_EPOCH])
    record = build(harness.entry("epoch"), home=harness.home, environ={**harness.environ,
                                                                        "SOURCE_DATE_EPOCH": "1"})
    assert record.artifact is not None
    commit_time = git("log", "-1", "--format=%ct", harness.repo.pin, cwd=harness.repo.path)
    assert f"# epoch {commit_time}\n" in Path(record.artifact.absolute).read_text()


def test_verify_reproducible_and_admission_record_both_digests(harness: Harness) -> None:
    harness.add_entry("cwd", ["python3", "-c", EMBEDS_CWD])
    record = verify_reproducible(harness.entry("cwd"), home=harness.home, environ=harness.environ)
    repro = record.reproducibility
    assert repro is not None and repro.reproducible and len(set(repro.digests)) == 1 and len(repro.builds) == 2
    assert json.loads((Path(record.build_dir) / "build.json").read_text())["reproducibility"]["reproducible"]
    admission, _ = admit(harness.entry("cwd"), home=harness.home, environ=harness.environ)
    assert admission.reproducible is True and admission.reproducibility_digests == repro.digests


def test_unreproducible_build_is_reported_and_the_cli_exits_1(harness: Harness) -> None:
    harness.add_entry("clock", ["python3", "-c", EMBEDS_TIME])
    env = {**os.environ, **harness.environ}
    result = CliRunner().invoke(provider_group, ["build", "clock", "--verify-reproducible", "--json"], env=env)
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert data["reproducibility"]["reproducible"] is False and len(set(data["reproducibility"]["digests"])) == 2
    admission, _ = admit(harness.entry("clock"), home=harness.home, environ=harness.environ)
    assert admission.reproducible is False and len(admission.reproducibility_digests) == 2


def test_plain_build_leaves_reproducibility_unchecked(harness: Harness) -> None:
    build(harness.entry(), home=harness.home, environ=harness.environ)
    admission, _ = admit(harness.entry(), home=harness.home, environ=harness.environ)
    assert admission.reproducible is None and admission.reproducibility_digests == []


def test_operator_pin_alone_keeps_the_discovered_source(harness: Harness) -> None:
    harness.add_entry("offline", url=UNREACHABLE)
    discover("offline", home=harness.home, environ=harness.environ, entry=harness.entry("offline"),
             source=harness.repo.url, pin=harness.repo.head)
    record = build(harness.entry("offline"), home=harness.home, environ=harness.environ, pin=harness.repo.pin)
    assert (record.pin, record.source_url, record.pinned_by) == (harness.repo.pin, harness.repo.url, "operator")


def test_two_harness_homes_build_the_same_bytes(harness: Harness, tmp_path: Path) -> None:
    """The checkout path depends on the pin only, not on the home: an embedded path is the same."""
    harness.add_entry("cwd", ["python3", "-c", EMBEDS_CWD])
    first = build(harness.entry("cwd"), home=harness.home, environ=harness.environ)
    other = tmp_path / "other-home"
    second = build(harness.entry("cwd"), home=other, environ={**harness.environ, "CTO_HARNESS_HOME": str(other)})
    assert first.artifact and second.artifact and first.artifact.sha256 == second.artifact.sha256
    assert Path(second.build_dir).is_relative_to(other) and first.checkout == second.checkout


def test_a_build_dir_owned_by_someone_else_is_refused(harness: Harness, tmp_path: Path) -> None:
    root = Path(harness.environ["CTO_HARNESS_BUILD_ROOT"])
    root.mkdir()
    (root / "toy").symlink_to(tmp_path)  # planted: the build must not follow it
    with pytest.raises(BuildError, match="not a directory owned by uid"):
        build(harness.entry(), home=harness.home, environ=harness.environ)
    assert not (tmp_path / harness.repo.pin).exists()
