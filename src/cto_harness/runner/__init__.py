"""The Stage 2 run lifecycle: workspace, bounded execution, grading, the report."""

from cto_harness.runner._recover import find_orphans, recover_run, recover_runs
from cto_harness.runner._safe_copy import keep_state_dir
from cto_harness.runner._stage2 import DEFAULT_MAX_OUTPUT_BYTES, RunRequest, RunResult, check_timeouts, run_stage2

__all__ = [
    "DEFAULT_MAX_OUTPUT_BYTES",
    "RunRequest",
    "RunResult",
    "check_timeouts",
    "find_orphans",
    "keep_state_dir",
    "recover_run",
    "recover_runs",
    "run_stage2",
]
