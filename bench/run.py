"""The project's benchmark (not a test): the harness's own cost against the floor.

    python -m bench [--repeat N] [--cases r1,5k,50mb] [--check] [--jobs] [--json PATH]

The floor is what a careful person does by hand for one trial: copy the fixture's repo,
apply the solution patch, run ``python -m pytest -q -p no:cacheprovider`` with
``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``. The harness side is one ``cto-harness run`` of the
same fixture on the fake lane (whose default scenario applies the same patch).

Three cases, built as temporary fixtures derived from the built-in ``r1-string-slugify``:
``r1`` itself, ``r1`` plus 5,000 small files, ``r1`` plus one 50 MB file. Each case runs
paired rounds that alternate which side goes first (the machine may be loaded: only
paired, alternating medians mean anything), and prints medians, min-max, the ratio of
medians, report.json size, peak RSS of the harness tree, and the per-stage breakdown of
one run taken from the run's own ``events.jsonl``.

Goals (issue 12) are checked only with ``--check`` (exit status 1 when one is missed);
CI runs the bench without it and just prints the table.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BASE_FIXTURE = "r1-string-slugify"
SMALL_FILES = 5_000
BIG_FILE_BYTES = 50 * 1024 * 1024
REPORT_GOAL_BYTES = 256 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    ratio_goal: float
    build: Callable[[Path], None]
    """Adds the case's extra files to a copy of the base fixture's ``repo/``."""


def _nothing(repo: Path) -> None:
    return None


def _small_files(repo: Path) -> None:
    for i in range(SMALL_FILES):
        directory = repo / "data" / f"d{i // 100:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{i:04d}.txt").write_text(f"small file {i}\n" + "x" * (i % 200) + "\n")


def _big_file(repo: Path) -> None:
    rng = random.Random(12)  # incompressible but reproducible
    with open(repo / "blob.bin", "wb") as out:
        left = BIG_FILE_BYTES
        while left:
            n = min(left, 1 << 20)
            out.write(rng.randbytes(n))
            left -= n


CASES = {
    "r1": Case("r1", BASE_FIXTURE, 2.0, _nothing),
    "5k": Case("5k", f"{BASE_FIXTURE} + {SMALL_FILES:,} small files", 2.5, _small_files),
    "50mb": Case("50mb", f"{BASE_FIXTURE} + one {BIG_FILE_BYTES >> 20} MB file", 2.0, _big_file),
}


def build_fixture(case: Case, scratch: Path) -> Path:
    """A fixture directory derived from the built-in base fixture (own id, extra files)."""
    from cto_harness.fixtures import builtin_fixtures_dir

    dest = scratch / "fixtures" / f"bench-{case.name}"
    shutil.copytree(builtin_fixtures_dir() / BASE_FIXTURE, dest,
                    ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    manifest = dest / "fixture.toml"
    text = manifest.read_text()
    manifest.write_text(text.replace(f'id = "{BASE_FIXTURE}"', f'id = "bench-{case.name}"', 1))
    case.build(dest / "repo")
    return dest


def byte_compile(package_dir: Path) -> None:
    """Byte-compile the harness's own modules once, as installing the package does.

    With ``PYTHONDONTWRITEBYTECODE=1`` in the environment (as on a developer's shell) an
    editable install never gets a ``__pycache__``, and every run would recompile all of
    its modules (~120 ms on these machines): a cost of that shell, not of the harness.
    The built-in fixtures are left alone (their trees are test data with digests).
    """
    ok = compileall.compile_dir(package_dir, quiet=1, rx=re.compile(r"[/\\]fixtures[/\\]builtin[/\\]"))
    if not ok:
        raise SystemExit(f"bench: byte-compiling {package_dir} failed")


def harness_package_dir(src: Path | None) -> Path:
    """The ``cto_harness`` package the harness side imports (``src``'s with ``--compare``)."""
    if src is not None:
        return src / "cto_harness"
    spec = importlib.util.find_spec("cto_harness")
    assert spec is not None and spec.submodule_search_locations, "cto_harness is not importable"
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass
class Sample:
    seconds: float
    max_rss_kib: int


def _spawn_timed(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> Sample:
    """Wall time and peak RSS (largest process of the waited tree) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)} exited {proc.returncode}")
    return Sample(elapsed, usage.ru_maxrss)


def floor_once(fixture: Path, scratch: Path) -> Sample:
    """Copy the repo, apply the solution, run the tests with plugin autoload off."""
    work = scratch / f"floor-{time.perf_counter_ns()}"
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    start = time.perf_counter()
    shutil.copytree(fixture / "repo", work)
    _spawn_timed(["git", "apply", str(fixture / "solution.patch")], cwd=work)
    tests = _spawn_timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                         cwd=work, env=env)
    elapsed = time.perf_counter() - start
    shutil.rmtree(work)
    return Sample(elapsed, tests.max_rss_kib)


@dataclass
class HarnessRun:
    sample: Sample
    report_bytes: int
    artifacts: int
    verdict: str
    stages: list[tuple[str, float]]


def harness_once(fixture: Path, scratch: Path, *, keep: bool = False, src: Path | None = None) -> HarnessRun:
    """One ``cto-harness run``; with ``src``, the harness imported from that source tree instead."""
    runs = scratch / f"runs-{time.perf_counter_ns()}"
    env = None if src is None else {**os.environ, "PYTHONPATH": str(src)}
    spawned = time.time()
    sample = _spawn_timed([sys.executable, "-m", "cto_harness", "run", "--fixture", str(fixture),
                           "--runs-dir", str(runs)], env=env)
    exited = time.time()
    (run_dir,) = runs.iterdir()
    report_path = run_dir / "report.json"
    report = json.loads(report_path.read_text())
    stages = stage_breakdown(run_dir / "events.jsonl", spawned, exited)
    result = HarnessRun(sample, report_path.stat().st_size, len(report.get("artifacts", {})),
                        report.get("verdict", "?"), stages)
    if not keep:
        shutil.rmtree(runs)
    return result


STAGE_NAMES = {
    "run_started": "interpreter, imports, config, fixture load, run dir",
    "workspace_ready": "workspace copy + git baseline",
    "provider_preflight": "provider preflight",
    "model_admission": "model admission",
    "provider_process_started": "task, sandbox choice, spawn",
    "provider_process_exited": "agent process",
    "changes_computed": "change set (diff)",
    "tests_finished": "grading (isolated verifier: copy, patch, pytest)",
    "report_written": "report (artifacts, attestation)",
}


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def stage_breakdown(events_path: Path, spawned: float, exited: float) -> list[tuple[str, float]]:
    """Seconds between consecutive events, labelled by the event that closes the stage."""
    stages: list[tuple[str, float]] = []
    previous = spawned
    for line in events_path.read_text().splitlines():
        event = json.loads(line)
        now = _ts(event["ts"])
        label = STAGE_NAMES.get(event["event"], event["event"])
        data = event.get("data", {})
        if event["event"] == "workspace_ready" and "copy_s" in data:
            stages.append(("workspace copy", float(data["copy_s"])))
            stages.append(("git baseline", float(data["baseline_s"])))
        else:
            stages.append((label, now - previous))
        previous = now
    stages.append(("exit (after the last event)", exited - previous))
    return stages


@dataclass
class CaseResult:
    case: Case
    floor: list[Sample] = field(default_factory=list)
    harness: list[HarnessRun] = field(default_factory=list)
    other: list[HarnessRun] = field(default_factory=list)
    """``--compare``: the same rounds with the harness from another source tree."""

    @property
    def ratio(self) -> float:
        return _median([h.sample.seconds for h in self.harness]) / _median([f.seconds for f in self.floor])


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def wait_until_settled(fixture: Path) -> None:
    """Wait until every file of the fresh fixture is older than the fixture digest's margin.

    The harness reuses a cached digest (and keeps a big file's git object between runs)
    only for files changed at least ``VOUCH_MARGIN_NS`` before it read them: a fixture
    written a moment ago is read and hashed in full by every run until then, which no
    operator's fixture is for more than two seconds. Without this wait the first measured
    round or two were such cold runs (2.2 s instead of 1.1 s on a loaded machine).
    """
    from cto_harness.fixtures._fixture import VOUCH_MARGIN_NS

    newest = max(os.lstat(path).st_ctime_ns for path in [fixture, *fixture.rglob("*")])
    while (left := newest + VOUCH_MARGIN_NS + 50_000_000 - time.time_ns()) > 0:
        time.sleep(left / 1e9)


def run_case(case: Case, scratch: Path, repeat: int, compare: Path | None = None) -> CaseResult:
    fixture = build_fixture(case, scratch)
    result = CaseResult(case)
    wait_until_settled(fixture)
    # Warm the page cache, the interpreter's files and the harness's caches (digest, big objects).
    harness_once(fixture, scratch)
    floor_once(fixture, scratch)
    for i in range(repeat):
        last = i == repeat - 1
        sides: list[Callable[[], None]] = [
            lambda: result.harness.append(harness_once(fixture, scratch, keep=last)),  # noqa: B023 (called now)
            lambda: result.floor.append(floor_once(fixture, scratch)),
        ]
        if compare is not None:
            sides.append(lambda: result.other.append(harness_once(fixture, scratch, src=compare)))
        shift = i % len(sides)  # rotate the order every round
        for side in sides[shift:] + sides[:shift]:
            side()
    shutil.rmtree(fixture)
    return result


def help_latency(repeat: int) -> list[float]:
    return [_spawn_timed([sys.executable, "-m", "cto_harness", "--help"]).seconds for _ in range(repeat)]


def _span(values: list[float]) -> str:
    return f"{_median(values):6.3f} s ({min(values):.3f}-{max(values):.3f})"


def print_table(results: list[CaseResult], helps: list[float], repeat: int) -> list[str]:
    """Print the table; return the goals that were missed."""
    missed: list[str] = []
    load = os.getloadavg()
    print(f"bench: {repeat} paired rounds per case, alternating order; cores {os.cpu_count()}, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; harness modules byte-compiled first")
    print()
    header = f"{'case':<44} {'floor (median, min-max)':<26} {'cto-harness':<26} {'ratio':>6} {'goal':>6}"
    print(header)
    print("-" * len(header))
    for res in results:
        ratio = res.ratio
        ok = ratio <= res.case.ratio_goal
        if not ok:
            missed.append(f"{res.case.name}: ratio {ratio:.2f}x > {res.case.ratio_goal}x")
        print(f"{res.case.title:<44} {_span([f.seconds for f in res.floor]):<26} "
              f"{_span([h.sample.seconds for h in res.harness]):<26} {ratio:5.2f}x "
              f"{'≤' + format(res.case.ratio_goal, 'g') + 'x':>6} {'ok' if ok else 'MISSED'}")
    if any(res.other for res in results):
        print()
        print("--compare: the other source tree's harness in the same rounds")
        for res in results:
            other = [h.sample.seconds for h in res.other]
            mine = _median([h.sample.seconds for h in res.harness])
            ratio = _median(other) / _median([f.seconds for f in res.floor])
            print(f"{res.case.title:<44} {'':<26} {_span(other):<26} {ratio:5.2f}x  "
                  f"(this tree is {_median(other) / mine:.2f}x faster; its report.json "
                  f"{res.other[-1].report_bytes / 1024:.1f} KiB)")
    print()
    for res in results:
        last = res.harness[-1]
        rss = max(h.sample.max_rss_kib for h in res.harness) / 1024
        floor_rss = max(f.max_rss_kib for f in res.floor) / 1024
        line = (f"{res.case.name:<5} report.json {last.report_bytes / 1024:8.1f} KiB "
                f"({last.artifacts} artifact entries), verdict {last.verdict}, "
                f"peak RSS {rss:.0f} MiB (floor's pytest {floor_rss:.0f} MiB)")
        if res.case.name == "5k":
            ok = last.report_bytes <= REPORT_GOAL_BYTES
            line += f"  [goal ≤ {REPORT_GOAL_BYTES // 1024} KiB: {'ok' if ok else 'MISSED'}]"
            if not ok:
                missed.append(f"5k: report.json {last.report_bytes} bytes > {REPORT_GOAL_BYTES}")
        if last.verdict != "pass":
            missed.append(f"{res.case.name}: verdict {last.verdict}, expected pass")
        print(line)
    if helps:
        print(f"cto-harness --help: {_span(helps)}")
    print()
    for res in results:
        print(f"per-stage breakdown, one harness run of {res.case.title} (from its events.jsonl):")
        stages = res.harness[-1].stages
        total = sum(s for _, s in stages)
        for label, seconds in stages:
            print(f"  {label:<52} {seconds * 1000:8.1f} ms")
        print(f"  {'total':<52} {total * 1000:8.1f} ms")
        print()
    return missed


def run_jobs_bench() -> int:
    script = REPO_ROOT / "bench" / "bench_jobs.py"
    if not script.is_file():
        print("bench/bench_jobs.py not present: skipping the jobs row")
        return 0
    print("jobs (bench/bench_jobs.py):", flush=True)
    return subprocess.run([sys.executable, str(script), "--repeat", "1"], check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="paired rounds per case (default 5)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal of issue 12 is missed")
    parser.add_argument("--jobs", action="store_true", help="also run bench/bench_jobs.py (if present)")
    parser.add_argument("--json", type=Path, help="write the raw samples here")
    parser.add_argument("--compare", type=Path, metavar="SRC",
                        help="also run the harness from another source tree (its src/) in the same rounds")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown or args.repeat < 1:
        parser.error(f"unknown case(s) {unknown}" if unknown else "--repeat must be >= 1")
    for package_dir in {harness_package_dir(None), *([harness_package_dir(args.compare)] if args.compare else [])}:
        byte_compile(package_dir)
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="cto-bench-") as tmp:
        scratch = Path(tmp)
        for name in names:
            print(f"bench: case {name} ...", file=sys.stderr, flush=True)
            results.append(run_case(CASES[name], scratch, args.repeat, args.compare))
    helps = help_latency(args.repeat)
    missed = print_table(results, helps, args.repeat)
    if args.json:
        args.json.write_text(json.dumps({
            res.case.name: {
                "floor_s": [f.seconds for f in res.floor],
                "harness_s": [h.sample.seconds for h in res.harness],
                "compare_s": [h.sample.seconds for h in res.other],
                "report_bytes": res.harness[-1].report_bytes,
                "stages": res.harness[-1].stages,
            } for res in results} | {"help_s": helps}, indent=2))
    jobs_status = run_jobs_bench() if args.jobs else 0
    if missed:
        print("goals missed: " + "; ".join(missed))
    if args.check and (missed or jobs_status):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
