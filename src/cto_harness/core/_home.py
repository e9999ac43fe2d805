"""Where the harness keeps its state (kept apart from the config models: no pydantic here)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def harness_home(environ: Mapping[str, str]) -> Path:
    """``CTO_HARNESS_HOME`` or the platform user-data dir."""
    configured = environ.get("CTO_HARNESS_HOME")
    if configured:
        return Path(configured).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("cto-harness", appauthor=False))
