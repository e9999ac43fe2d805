"""PEP 562 lazy exports: the one ``__getattr__``/``__dir__`` pair every deferring package uses.

A package that should cost nothing to import until a name is used lists its exports in a table
and sets ``__getattr__, __dir__ = lazy_exports(__name__, TABLE)``. Nothing of ours is imported
here, so any room may use it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, table: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``.

    ``table`` maps an exported name to ``module:attribute``, or to ``module`` when the
    attribute has the exported name. A name is imported on first use and then kept in the
    package's namespace, so a later lookup never reaches ``__getattr__`` again.
    """

    def __getattr__(name: str) -> Any:
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = target.partition(":")
        value = getattr(importlib.import_module(module), attr or name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
