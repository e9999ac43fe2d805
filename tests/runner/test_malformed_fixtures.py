"""Malformed fixtures never crash the harness: always a report (fixture-invalid) or a usage error."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cto_harness.evidence import verify_run
from cto_harness.runner import RunRequest, run_stage2

_scalars = st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.floats(allow_nan=False))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=5)
_manifest = st.dictionaries(
    st.sampled_from(["id", "title", "instructions", "tests", "solution", "extra"]),
    st.one_of(_values, st.dictionaries(st.sampled_from(["command", "timeout_seconds", "paths", "patch"]), _values)),
    max_size=6,
)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _to_toml(manifest: dict[str, object]) -> str:
    lines, tables = [], []
    for key, value in manifest.items():
        if isinstance(value, dict):
            tables.append(f"[{key}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in value.items()))
        else:
            lines.append(f"{key} = {_toml_value(value)}\n")
    return "".join(lines) + "".join(tables)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(manifest=_manifest, raw=st.one_of(st.none(), st.binary(max_size=200)))
def test_random_manifests_give_a_report(tmp_path: Path, manifest: dict[str, object], raw: bytes | None) -> None:
    fixture = Path(tempfile.mkdtemp(dir=tmp_path, prefix="fx-"))
    (fixture / "repo").mkdir()
    (fixture / "fixture.toml").write_bytes(raw if raw is not None else _to_toml(manifest).encode())
    result = run_stage2(RunRequest(fixture=str(fixture), runs_dir=tmp_path / "runs", environ={"PATH": "/usr/bin:/bin"}))
    assert result.report.verdict in {"blocked", "fail", "error"}
    assert result.report.failure_class in {"fixture-invalid", "no-changes", "tests-failed", "provider-crashed"}
    assert result.report.verdict != "error", result.report.reasons
    assert verify_run(result.run_dir).ok


def test_traversal_in_grading_paths_is_refused(tmp_path: Path) -> None:
    fixture = tmp_path / "trav"
    (fixture / "repo").mkdir(parents=True)
    (fixture / "solution.patch").write_text("")
    (fixture / "fixture.toml").write_text(
        'id = "trav"\ntitle = "t"\ninstructions = "i"\n[tests]\ncommand = ["true"]\ntimeout_seconds = 5\n'
        'paths = ["../outside.py"]\n[solution]\npatch = "solution.patch"\n'
    )
    result = run_stage2(RunRequest(fixture=str(fixture), runs_dir=tmp_path / "runs", environ={"PATH": "/usr/bin"}))
    assert (result.report.verdict, result.report.failure_class) == ("blocked", "fixture-invalid")
    assert "outside.py" in result.report.reasons[0]
    assert "\n" not in result.report.reasons[0]
    assert not result.report.backend.process_started
