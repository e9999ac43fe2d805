"""Run directory names are unique even for parallel trials in one process, and locked while live."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from cto_harness.evidence import create_run_dir, is_locked


def test_parallel_run_dirs_in_one_second_are_unique(tmp_path: Path) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda _: create_run_dir(tmp_path, "r1-x", now=now), range(16)))
    names = {run.run_id for run in runs}
    assert len(names) == 16
    pattern = re.compile(rf"^20260102T030405Z-r1-x-{os.getpid()}(-\d+)?$")
    assert all(pattern.match(name) for name in names)
    assert all(is_locked(run.path) for run in runs)
    for run in runs:
        run.release()
    assert not any(is_locked(run.path) for run in runs)


def test_fixture_id_is_made_path_safe(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path, "../../etc/passwd")
    assert run.path.parent == tmp_path.resolve()
    assert "/" not in run.run_id and ".." not in run.run_id
    run.release()
