"""Benchmark (not a test): harness overhead over the bare fixture test run, and --help latency.

Prints medians over repeated runs. Targets: overhead <= 10 % over the fixture's own test
command run alone; `cto-harness --help` <= 0.3 s.

    python bench/bench_run.py [--repeat N] [--fixture ID]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(argv: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bare_test_run(fixture_id: str, scratch: Path) -> float:
    """The fixture's own test command on an already-fixed copy, with nothing around it."""
    from cto_harness.fixtures import load_fixture, resolve_fixture, test_argv

    fixture = load_fixture(resolve_fixture(fixture_id), builtin=True)
    work = scratch / f"bare-{time.perf_counter_ns()}"
    shutil.copytree(fixture.repo_dir, work)
    subprocess.run(["git", "apply", str(fixture.solution_patch)], cwd=work, check=True)
    return timed(test_argv(fixture), cwd=work)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--fixture", default="r1-string-slugify")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "cto_harness"]
    with tempfile.TemporaryDirectory(prefix="cto-bench-") as tmp:
        scratch = Path(tmp)
        bare, harness, helps = [], [], []
        for _ in range(args.repeat):
            bare.append(bare_test_run(args.fixture, scratch))
            harness.append(timed([*cli, "run", "--fixture", args.fixture, "--runs-dir", str(scratch / "runs")]))
            helps.append(timed([*cli, "--help"]))
    bare_m, harness_m, help_m = (statistics.median(x) for x in (bare, harness, helps))
    overhead = (harness_m - bare_m) / bare_m * 100
    print(f"repeats:                      {args.repeat}")
    print(f"bare fixture test run:        {bare_m:.3f} s (median)")
    print(f"cto-harness run (fake, fix):  {harness_m:.3f} s (median)")
    print(f"harness overhead:             {harness_m - bare_m:.3f} s = {overhead:.0f} % (target <= 10 %)")
    print(f"cto-harness --help:           {help_m:.3f} s (median, target <= 0.3 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
