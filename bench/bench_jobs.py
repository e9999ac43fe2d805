"""Benchmark (not a test): a job's wall time against the floor, parallel efficiency, Ray overhead.

    python bench/bench_jobs.py [--trials 20] [--concurrency 2] [--repeat 3] [--efficiency] [--ray]
                               [--processes] [--large]

- floor: issue 12's floor (copy the fixture, apply its solution with ``git apply``, run its own
  test command with no pytest plugin autoload, as the grader runs it), ``trials`` times,
  ``concurrency`` at a time;
- separate: ``trials`` separate ``cto-harness run`` processes, ``concurrency`` at a time;
- job: one ``cto-harness job run`` of ``trials`` attempts at ``concurrency`` (goal <= 1.3x the floor);
  each executor slot keeps a zygote that forks every trial;
- --cli: the same job as a user runs it, ``cto-harness job run`` in a new process (its interpreter
  start and imports included, which the in-process job case leaves out), paired with the floor;
- --processes: the same job with a fresh ``python -m cto_harness.jobs._trial`` process per trial
  (the executor before zygotes), paired with the job;
- --efficiency: the same job at concurrency 1, efficiency = t(1) / (concurrency * t(concurrency)) (goal >= 85 %);
- --ray: the same job on a local Ray cluster; start-up is quoted apart (goal <= 5 % over local after it);
- --large: the 200-trial fake-lane case of issue 13 (= --trials 200 --efficiency --skip-floor
  --skip-separate); minutes per repeat, so not part of CI's bench.

Within a repeat the cases run one after another, in an order that rotates between repeats, so
each ratio compares runs made under the same load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _quiet(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    subprocess.run(argv, cwd=cwd, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _in_parallel(jobs: list[tuple[list[str], Path | None]], concurrency: int,
                 env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda job: _quiet(job[0], job[1], env=env), jobs))
    return time.perf_counter() - start


def floor(fixture_id: str, trials: int, concurrency: int, scratch: Path) -> tuple[float, float]:
    """(wall, CPU) of the floor of issue 12, ``concurrency`` at a time: each trial copies the fixture,
    applies its solution with ``git apply`` and runs its tests, as a careful person does by hand."""
    from cto_harness.fixtures import load_fixture, resolve_fixture, test_argv

    fixture = load_fixture(resolve_fixture(fixture_id), builtin=True)
    # As the grader runs pytest: no plugin autoload (installed plugins can cost seconds per run).
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}

    def one(i: int) -> None:
        work = scratch / f"bare-{i}"
        shutil.copytree(fixture.repo_dir, work)
        _quiet(["git", "apply", str(fixture.solution_patch)], cwd=work)
        _quiet(test_argv(fixture), cwd=work, env=env)

    cpu = tree_cpu()
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(trials)))
    return time.perf_counter() - start, tree_cpu() - cpu


def separate(fixture_id: str, trials: int, concurrency: int, scratch: Path) -> float:
    cli = [sys.executable, "-m", "cto_harness", "run", "--fixture", fixture_id, "--runs-dir", str(scratch / "runs")]
    return _in_parallel([(cli, None) for _ in range(trials)], concurrency)


def cli_job(fixture_id: str, trials: int, concurrency: int, scratch: Path) -> tuple[float, float]:
    """(wall, CPU) of ``cto-harness job run`` in a new process, from its start to its exit."""
    argv = [sys.executable, "-m", "cto_harness", "job", "run", "--provider", "fake", "--fixture", fixture_id,
            "--attempts", str(trials), "--concurrency", str(concurrency), "--jobs-dir", str(scratch / "jobs")]
    cpu = tree_cpu()
    start = time.perf_counter()
    done = subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"`cto-harness job run` exited {done.returncode}:\n{done.stderr[-2000:]}")
    return wall, tree_cpu() - cpu


def tree_cpu() -> float:
    """CPU seconds of this process and all its descendants, including the children they reaped."""
    import psutil

    total = 0.0
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def job(fixture_id: str, trials: int, concurrency: int, scratch: Path,
        executor: str = "local") -> tuple[float, float, float]:
    """(wall, Ray start-up, CPU) of one job; executor local|processes|ray.

    CPU is the job's whole process tree (coordinator, zygotes, trials, and for Ray the
    cluster's processes), measured while the cluster still runs: a more stable figure than
    the wall time on a machine that other work loads.
    """
    from cto_harness.jobs import LocalExecutor, RayExecutor, create_job, parse_spec, run_job

    spec = parse_spec({"name": f"bench-{executor}", "fixtures": [fixture_id], "attempts": trials,
                       "concurrency": concurrency, "agents": [{"name": "fake", "provider": "fake"}]})
    job_dir = create_job(spec, scratch / "jobs")
    runner: LocalExecutor | RayExecutor
    startup = 0.0
    if executor == "ray":
        import ray

        began = time.perf_counter()  # as RayExecutor starts a local cluster; started here so its CPU can be read
        ray.init(num_cpus=concurrency, include_dashboard=False, log_to_driver=False, configure_logging=False)
        startup = time.perf_counter() - began
        runner = RayExecutor(concurrency=concurrency)
    else:
        runner = LocalExecutor(concurrency, zygotes=executor == "local")
    try:
        cpu = tree_cpu()
        start = time.perf_counter()
        outcome = run_job(job_dir, executor=runner)
        wall = time.perf_counter() - start
        cpu = tree_cpu() - cpu
    finally:
        if executor == "ray":
            ray.shutdown()
    if outcome.summary["verdicts"] != {"pass": trials}:
        logs = sorted(job_dir.glob("logs/*/*/*.stderr"))
        tail = logs[-1].read_text(errors="replace")[-2000:] if logs else "no trial logs"
        raise SystemExit(f"{executor} job did not pass every trial: {outcome.summary['verdicts']}\n{tail}")
    return wall, startup, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fixture", default="r1-string-slugify")
    parser.add_argument("--efficiency", action="store_true", help="also run the job at concurrency 1")
    parser.add_argument("--processes", action="store_true", help="also run the job with a process per trial")
    parser.add_argument("--cli", action="store_true", help="also run the job as `cto-harness job run` (a new process)")
    parser.add_argument("--ray", action="store_true", help="also run the job on a local Ray cluster")
    parser.add_argument("--skip-separate", action="store_true")
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument("--large", action="store_true", help="200 trials, efficiency only (not for CI)")
    args = parser.parse_args()
    if args.large:
        args.trials, args.efficiency, args.skip_floor, args.skip_separate = 200, True, True, True
    os.environ.setdefault("CTO_HARNESS_HOME", tempfile.mkdtemp(prefix="cto-bench-home-"))
    results: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)

    cases: list[tuple[str, Callable[[Path], None]]] = []
    if not args.skip_floor:
        def floor_case(s: Path) -> None:
            wall, cpu = floor(args.fixture, args.trials, args.concurrency, s)
            add("floor", wall)
            add("floor_cpu", cpu)

        cases.append(("floor", floor_case))
    if not args.skip_separate:
        cases.append(("separate", lambda s: add("separate", separate(args.fixture, args.trials, args.concurrency, s))))
    def job_case(name: str, concurrency: int, executor: str = "local") -> Callable[[Path], None]:
        def case(s: Path) -> None:
            wall, startup, cpu = job(args.fixture, args.trials, concurrency, s, executor)
            add(name, wall)
            add(f"{name}_cpu", cpu)
            if executor == "ray":
                add("ray_startup", startup)

        return case

    cases.append(("job", job_case("job", args.concurrency)))
    if args.cli:
        def cli_case(s: Path) -> None:
            wall, cpu = cli_job(args.fixture, args.trials, args.concurrency, s)
            add("cli", wall)
            add("cli_cpu", cpu)

        cases.append(("cli", cli_case))
    if args.processes:
        cases.append(("processes", job_case("processes", args.concurrency, "processes")))
    if args.efficiency:
        cases.append(("job_c1", job_case("job_c1", 1)))
    if args.ray:
        cases.append(("ray", job_case("ray_after_startup", args.concurrency, "ray")))
    for round_no in range(args.repeat):
        shift = round_no % len(cases)
        for name, case in cases[shift:] + cases[:shift]:
            with tempfile.TemporaryDirectory(prefix="cto-bench-jobs-") as tmp:
                case(Path(tmp))
            print(f"  repeat {round_no + 1}: {name} done", file=sys.stderr, flush=True)

    def span(name: str) -> str:
        values = results[name]
        return f"{statistics.median(values):7.2f} s (min {min(values):.2f}, max {max(values):.2f})"

    def cpu(name: str) -> str:
        per = [value / args.trials for value in results[f"{name}_cpu"]]
        return f"CPU {statistics.median(per):.3f} s/trial (min {min(per):.3f}, max {max(per):.3f})"

    def ratio_of(name: str, base: str) -> str:
        values = [a / b for a, b in zip(results[name], results[base], strict=True)]
        return f"{statistics.median(values):.2f}x (min {min(values):.2f}, max {max(values):.2f})"

    def ratio(name: str, base: str, goal: str = "") -> str:
        values = [a / b for a, b in zip(results[name], results[base], strict=True)]
        return (f"ratio {statistics.median(values):.2f}x (min {min(values):.2f}, max {max(values):.2f})"
                + (f" (goal {goal})" if goal else ""))

    print(f"{args.trials} trials of {args.fixture} at concurrency {args.concurrency}, {args.repeat} repeats "
          f"(load average at the end: {os.getloadavg()[0]:.1f})")
    if "floor" in results:
        print(f"floor (copy, apply, test; {args.concurrency} at a time): {span('floor')}")
        print(f"                                 {cpu('floor')}")
    if "separate" in results and "floor" in results:
        print(f"separate `run` processes:       {span('separate')}  {ratio('separate', 'floor')}")
    if "floor" in results:
        print(f"one `job run`:                  {span('job')}  {ratio('job', 'floor', '<= 1.3x')}")
    else:
        print(f"one `job run`:                  {span('job')}")
    print(f"                                 {cpu('job')}"
          + (f", {ratio_of('job_cpu', 'floor_cpu')} of the floor's" if "floor_cpu" in results else ""))
    if "cli" in results:
        print(f"`cto-harness job run` process:  {span('cli')}"
              + (f"  {ratio('cli', 'floor', '<= 1.3x')}" if "floor" in results else ""))
        print(f"                                 {cpu('cli')}"
              + (f", {ratio_of('cli_cpu', 'floor_cpu')} of the floor's" if "floor_cpu" in results else ""))
    if "processes" in results:
        print(f"job, a process per trial:       {span('processes')}  job/this {ratio('job', 'processes')}")
        if "floor" in results:
            print(f"                                 vs floor {ratio('processes', 'floor')}")
    if "job_c1" in results:
        eff = [c1 / (args.concurrency * cn) for c1, cn in zip(results["job_c1"], results["job"], strict=True)]
        print(f"job at concurrency 1:           {span('job_c1')}  efficiency {statistics.median(eff) * 100:.0f} % "
              f"(min {min(eff) * 100:.0f}, max {max(eff) * 100:.0f}) (goal >= 85 %)")
        print(f"                                 {cpu('job_c1')}")
    if "ray_startup" in results:
        over = [r / j - 1 for r, j in zip(results["ray_after_startup"], results["job"], strict=True)]
        print(f"ray start-up:                   {span('ray_startup')}")
        print(f"ray job after start-up:         {span('ray_after_startup')}  overhead "
              f"{statistics.median(over) * 100:+.0f} % (min {min(over) * 100:+.0f}, max {max(over) * 100:+.0f}) "
              f"vs local (goal <= 5 %)")
        more = [r / j - 1 for r, j in zip(results["ray_after_startup_cpu"], results["job_cpu"], strict=True)]
        print(f"                                 {cpu('ray_after_startup')}: "
              f"{statistics.median(more) * 100:+.0f} % (min {min(more) * 100:+.0f}, max {max(more) * 100:+.0f}) "
              "vs local")
    return 0


if __name__ == "__main__":
    sys.exit(main())
