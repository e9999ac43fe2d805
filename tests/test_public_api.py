"""The curated public API: every name resolves, lazily, so `--help` imports no subsystem."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import cto_harness

SUBSYSTEMS = ("cto_harness.runner", "cto_harness.evidence", "cto_harness.providers", "cto_harness.supply_chain",
              "cto_harness.selfcheck", "cto_harness.fixtures", "pydantic")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_every_public_name_resolves_and_is_listed() -> None:
    assert set(cto_harness.__all__) == {"__version__", *cto_harness._EXPORTS}
    for name in cto_harness._EXPORTS:
        assert getattr(cto_harness, name) is not None, name
    assert set(cto_harness._EXPORTS) <= set(dir(cto_harness))
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = cto_harness.no_such_name  # type: ignore[attr-defined]


def test_importing_the_package_or_the_cli_loads_no_subsystem() -> None:
    for code in ("import cto_harness", "import cto_harness.cli"):
        loaded = _modules_after(code)
        assert not loaded & set(SUBSYSTEMS), (code, sorted(loaded & set(SUBSYSTEMS)))


def test_help_loads_no_subsystem() -> None:
    code = ("import sys\nfrom cto_harness.cli import main\nsys.argv = ['cto-harness', '--help']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 0")
    loaded = _modules_after(code)
    assert not loaded & set(SUBSYSTEMS), sorted(loaded & set(SUBSYSTEMS))


def test_a_public_name_imports_only_its_package() -> None:
    loaded = _modules_after("from cto_harness import load_fixture")
    assert "cto_harness.fixtures" in loaded and "cto_harness.runner" not in loaded
