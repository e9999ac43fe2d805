"""The one environment and ``-c`` configuration every harness-side git runs with.

Harness-side git meets repositories the agent could have written (``workspace/.git``,
``baseline.git`` when the sandbox is off) and work trees full of agent files. It must never
run what they configure: no system, global or user config (``GIT_CONFIG_NOSYSTEM``,
``GIT_CONFIG_GLOBAL``, ``HOME``, ``XDG_CONFIG_HOME``), no system attributes, no replace
refs, and on the command line (which wins over a repository's config) no fsmonitor, hooks,
attributes file, pager, external diff, credential helper or transport.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

SAFE_GIT_CONFIG = (
    "core.fsmonitor=false", f"core.hooksPath={os.devnull}", f"core.attributesFile={os.devnull}",
    "core.pager=cat", "core.untrackedCache=false", "diff.external=", "credential.helper=",
    "core.autocrlf=false", "core.fileMode=true",
)
"""``-c`` settings on every harness-side git (with ``NO_TRANSPORT`` unless it must fetch)."""
NO_TRANSPORT = "protocol.allow=never"
"""Harness-side git that reads a run's stores never talks to a remote."""


def git_config_args(*, transport: bool = False) -> list[str]:
    """``-c`` arguments for ``SAFE_GIT_CONFIG`` (and ``NO_TRANSPORT`` unless ``transport``)."""
    settings = SAFE_GIT_CONFIG if transport else (*SAFE_GIT_CONFIG, NO_TRANSPORT)
    return [arg for item in settings for arg in ("-c", item)]


def git_env(inherit: Mapping[str, str] | None = None) -> dict[str, str]:
    """A non-interactive git environment.

    Without ``inherit`` (a run's stores and work trees): nothing of the caller's, the
    system's or the user's git configuration. With ``inherit`` (the operator's own
    network fetches: proxies, credentials) that environment is kept and only hardened.
    """
    hardening = {
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_PAGER": "cat",
        "LC_ALL": "C",
    }
    if inherit is not None:
        env = {**inherit, **hardening, "GIT_ASKPASS": "true", "SSH_ASKPASS": "true"}
        env.setdefault("PATH", os.defpath)
        return env
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "XDG_CONFIG_HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        **hardening,
    }
