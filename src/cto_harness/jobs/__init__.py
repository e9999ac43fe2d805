"""Jobs: agents x fixtures x attempts, in parallel, resumable, indexed, reported."""

# First, before any model below is built: importing it turns pydantic's plugin discovery off,
# so a zygote, trial or Ray worker started as a fresh interpreter runs none, as the CLI does not.
from cto_harness import _pydantic_plugins  # noqa: F401  # isort: skip
from cto_harness.jobs._index import INDEX_FILE, RebuildResult, index_path, query, rebuild, record_trial
from cto_harness.jobs._job import (
    DEFAULT_JOBS_DIR,
    JOB_FILE,
    Executor,
    JobError,
    JobOutcome,
    Progress,
    create_job,
    jobs_dir,
    list_jobs,
    load_job,
    make_executor,
    report_job,
    run_job,
)
from cto_harness.jobs._local import LocalExecutor, TrialTask
from cto_harness.jobs._plan import Trial, assess, latest_dir, plan, trial_dirs
from cto_harness.jobs._ray import RayExecutor, RayUnavailableError
from cto_harness.jobs._spec import AgentSpec, JobSpec, SpecError, fixture_key, load_spec, parse_spec
from cto_harness.jobs._summary import (
    SUMMARY_FILE,
    format_summary,
    pass_at_k,
    pass_hat_k,
    predictions,
    summarize,
)

__all__ = [
    "DEFAULT_JOBS_DIR",
    "INDEX_FILE",
    "JOB_FILE",
    "SUMMARY_FILE",
    "AgentSpec",
    "Executor",
    "JobError",
    "JobOutcome",
    "JobSpec",
    "LocalExecutor",
    "Progress",
    "RayExecutor",
    "RayUnavailableError",
    "RebuildResult",
    "SpecError",
    "Trial",
    "TrialTask",
    "assess",
    "create_job",
    "fixture_key",
    "format_summary",
    "index_path",
    "jobs_dir",
    "latest_dir",
    "list_jobs",
    "load_job",
    "load_spec",
    "make_executor",
    "parse_spec",
    "pass_at_k",
    "pass_hat_k",
    "plan",
    "predictions",
    "query",
    "rebuild",
    "record_trial",
    "report_job",
    "run_job",
    "summarize",
    "trial_dirs",
]
