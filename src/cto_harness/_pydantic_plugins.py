"""The harness's processes run no pydantic plugins found in the environment.

pydantic discovers plugins through the ``pydantic`` entry-point group of every installed
distribution and calls them on each model it builds and on each validation: any package
in the interpreter's environment could watch or alter how a report validates. The
harness uses none. Importing this module calls ``disable``: the CLI and the jobs package
(whose zygotes, trials and Ray workers may start as fresh interpreters) import it before
pydantic builds a model. pydantic then never scans the environment's metadata, which also
keeps ``importlib.metadata`` (~10 ms) off every run's start-up. A program that uses
``run_stage2`` as a library and never imports those keeps its own plugins.
"""

from __future__ import annotations

import sys
import types

_LOADER = "pydantic.plugin._loader"


def disable() -> None:
    """Make pydantic's plugin lookup find none (before pydantic first looks; else a no-op)."""
    if _LOADER in sys.modules:
        return
    loader = types.ModuleType(_LOADER, "No pydantic plugins in cto-harness (see cto_harness._pydantic_plugins).")
    loader.get_plugins = _no_plugins  # type: ignore[attr-defined]
    sys.modules[_LOADER] = loader


def _no_plugins() -> tuple[()]:
    return ()


disable()
