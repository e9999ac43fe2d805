"""Writes synthetic Case ``ca`` executables: Python scripts that behave like real ``ca``.

Each executable is the template ``_synthetic_ca_main.py`` with one ``BEHAVIOUR`` and a
shebang naming this interpreter, written as ``<dir>/<behaviour>/ca``. Their ``--help``
self-identifies like real ``ca`` but marked ``(synthetic)``, so they can be admitted through
the normal admission route only as synthetic (``admit(..., synthetic=True)``) and run in the
real lane, where every report says the provider is synthetic.
"""

from __future__ import annotations

import sys
from pathlib import Path

TEMPLATE = Path(__file__).with_name("_synthetic_ca_main.py")
ENV_DUMP = "synthetic-ca-environ.json"
"""Written into the child's HOME by every synthetic ``ca``: its complete environment."""
BEHAVIOURS = (
    "fix",
    "sleep",
    "hang-with-children",
    "protocol-error",
    "fatal",
    "noop-success",
    "agent-failure",
    "no-final-line",
    "wrong-model",
)
_MARKER = 'BEHAVIOUR = "fix"\n'


def synthetic_ca_source(behaviour: str) -> str:
    """The script text for ``behaviour``.

    Raises:
        ValueError: unknown behaviour.
    """
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown synthetic ca behaviour {behaviour!r}; valid: {', '.join(BEHAVIOURS)}")
    text = TEMPLATE.read_text(encoding="utf-8")
    if _MARKER not in text:
        raise RuntimeError(f"{TEMPLATE} lacks the line {_MARKER.strip()!r}")
    return f"#!{sys.executable} -I\n" + text.replace(_MARKER, f"BEHAVIOUR = {behaviour!r}\n", 1)


def write_synthetic_ca(directory: Path, behaviour: str) -> Path:
    """Write ``<directory>/<behaviour>/ca`` (mode 0755) and return its path."""
    path = directory / behaviour / "ca"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(synthetic_ca_source(behaviour), encoding="utf-8")
    path.chmod(0o755)
    return path
