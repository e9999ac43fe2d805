"""The one place that starts processes: bounded runs, tree kill, subreaper, signals, sandbox."""

from cto_harness.core import CapturedStream, ProcessResult
from cto_harness.proc._bounded import (
    KILL_WAIT_S,
    TAG_ENV,
    TERM_GRACE_S,
    HarnessInterrupted,
    Held,
    SpawnError,
    enable_subreaper,
    hold_bounded,
    install_signal_handlers,
    kill_process_tree,
    process_alive_with_tag,
    run_bounded,
)
from cto_harness.proc._exit import exit_now
from cto_harness.proc._git import NO_TRANSPORT as GIT_NO_TRANSPORT
from cto_harness.proc._git import SAFE_GIT_CONFIG, git_config_args, git_env
from cto_harness.proc._run import Captured, read_capped, run_captured, run_to_log
from cto_harness.proc._sandbox import INSTALL_HINT as SANDBOX_INSTALL_HINT
from cto_harness.proc._sandbox import MODES as SANDBOX_MODES
from cto_harness.proc._sandbox import (
    NETWORKS,
    Network,
    Sandbox,
    SandboxUnavailableError,
    choose_sandbox,
    probe_bwrap,
    runtime_paths,
    runtime_prefix,
    warm_sandbox_paths,
    wrap,
)
from cto_harness.proc._zygote import Zygote, ZygoteLost

__all__ = [
    "GIT_NO_TRANSPORT",
    "KILL_WAIT_S",
    "NETWORKS",
    "SAFE_GIT_CONFIG",
    "SANDBOX_INSTALL_HINT",
    "SANDBOX_MODES",
    "TAG_ENV",
    "TERM_GRACE_S",
    "Captured",
    "CapturedStream",
    "HarnessInterrupted",
    "Held",
    "Network",
    "ProcessResult",
    "Sandbox",
    "SandboxUnavailableError",
    "SpawnError",
    "Zygote",
    "ZygoteLost",
    "choose_sandbox",
    "enable_subreaper",
    "exit_now",
    "git_config_args",
    "git_env",
    "hold_bounded",
    "install_signal_handlers",
    "kill_process_tree",
    "probe_bwrap",
    "process_alive_with_tag",
    "read_capped",
    "run_bounded",
    "run_captured",
    "run_to_log",
    "runtime_paths",
    "runtime_prefix",
    "warm_sandbox_paths",
    "wrap",
]
