"""Which run dirs belong to a trial: real directories named attempt-<n>[-retry-<m>], by retry."""

from __future__ import annotations

from pathlib import Path

from cto_harness.jobs import Trial, latest_dir, trial_dirs
from cto_harness.jobs._plan import latest_dirs


def test_a_trials_dirs_are_its_own_real_directories_by_retry_and_the_summary_listing_agrees(tmp_path: Path) -> None:
    trials = [Trial("fixer", "r1-string-slugify", attempt) for attempt in (1, 2, 3, 4, 10)]
    base = trials[0].base(tmp_path)
    base.mkdir(parents=True)
    for name in ("attempt-1", "attempt-1-retry-2", "attempt-1-retry-10", "attempt-10", "attempt-3-retry-1",
                 "attempt-1-old", "notes"):
        (base / name).mkdir()
    (base / "attempt-2").symlink_to(base / "attempt-1")  # a link is never a run dir (it may point anywhere)
    (base / "attempt-4").write_text("a file")
    assert trial_dirs(tmp_path, trials[0]) == [(0, base / "attempt-1"), (2, base / "attempt-1-retry-2"),
                                               (10, base / "attempt-1-retry-10")]
    assert trial_dirs(tmp_path, trials[1]) == []
    assert trial_dirs(tmp_path, trials[4]) == [(0, base / "attempt-10")]
    expected = {trial: path for trial in trials if (path := latest_dir(tmp_path, trial)) is not None}
    assert expected == {trials[0]: base / "attempt-1-retry-10", trials[2]: base / "attempt-3-retry-1",
                        trials[4]: base / "attempt-10"}
    assert latest_dirs(tmp_path, trials) == expected
    assert latest_dirs(tmp_path / "elsewhere", trials) == {}
