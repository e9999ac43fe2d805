"""The Stage 2 run lifecycle: workspace, bounded execution, grading, the report.

``hold_grader`` is light (the CLI starts a grading sandbox before its own imports); the
lifecycle itself is imported on first use.
"""

from typing import TYPE_CHECKING

from cto_harness._lazy import lazy_exports
from cto_harness.runner._held_grader import HeldGrader, hold_grader

if TYPE_CHECKING:
    from cto_harness.runner._recover import find_orphans, recover_run, recover_runs
    from cto_harness.runner._safe_copy import keep_state_dir
    from cto_harness.runner._stage2 import (
        DEFAULT_MAX_OUTPUT_BYTES,
        RunRequest,
        RunResult,
        check_timeouts,
        run_stage2,
    )

_LAZY = {
    **{name: "cto_harness.runner._recover" for name in ("find_orphans", "recover_run", "recover_runs")},
    "keep_state_dir": "cto_harness.runner._safe_copy",
    **{name: "cto_harness.runner._stage2" for name in (
        "DEFAULT_MAX_OUTPUT_BYTES", "RunRequest", "RunResult", "check_timeouts", "run_stage2")},
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "DEFAULT_MAX_OUTPUT_BYTES",
    "HeldGrader",
    "RunRequest",
    "RunResult",
    "check_timeouts",
    "find_orphans",
    "hold_grader",
    "keep_state_dir",
    "recover_run",
    "recover_runs",
    "run_stage2",
]
