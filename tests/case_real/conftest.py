"""Real WorkOS Case: runs only against an operator-built, admitted ``ca`` (``CTO_HARNESS_CASE_HOME``).

The repository never holds Case's source, a binary built from it or a script that builds
it (Case carries no license). The operator builds and admits it through the project's own
route into a harness home outside the repository (see ``docs/case.md``)::

    export CTO_HARNESS_HOME=/some/case-home
    cto-harness provider discover case --source <url> --pin <sha>
    cto-harness provider toolchain case --bootstrap
    cto-harness provider build case --verify-reproducible
    cto-harness provider admit case
    CTO_HARNESS_CASE_HOME=/some/case-home python -m pytest -q -m real_case

Without ``CTO_HARNESS_CASE_HOME`` every test here is skipped with that message. With it,
a home that holds no admitted real ``ca`` is an error, not a skip: the operator asked for
the real lane.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from cto_harness.supply_chain import AdmissionRecord, active_admissions

CASE_HOME_ENV = "CTO_HARNESS_CASE_HOME"
SKIP_REASON = (f"{CASE_HOME_ENV} is not set: the real WorkOS Case tests need a harness home holding an admitted "
               "real `ca` (provider discover -> toolchain --bootstrap -> build -> admit; see docs/case.md)")


@dataclass(frozen=True)
class RealCase:
    home: Path
    admission: AdmissionRecord
    environ: dict[str, str]
    """The caller environment of a run: no CTO_HARNESS_* of the test process, the Case home."""


@pytest.fixture(scope="session")
def real_case() -> RealCase:
    value = os.environ.get(CASE_HOME_ENV)
    if not value:
        pytest.skip(SKIP_REASON)
    home = Path(value)
    admissions = active_admissions(home, "case") if home.is_dir() else []
    if not admissions:
        pytest.fail(f"{CASE_HOME_ENV}={value} holds no active admission of `case`; build and admit real ca "
                    "there first (docs/case.md)")
    admission = admissions[0]
    if admission.synthetic or not admission.built_here:
        pytest.fail(f"{CASE_HOME_ENV}={value}: the active `case` admission {admission.sha256[:16]} is not a ca "
                    "built here from Case's source (synthetic or supplied)")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CTO_HARNESS_")}
    environ["CTO_HARNESS_HOME"] = str(home)
    return RealCase(home=home, admission=admission, environ=environ)
