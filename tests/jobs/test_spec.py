"""Job specs: strict TOML validation, one clear line per problem, usage errors at the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.jobs.helpers import job_cli, write_spec

from cto_harness.jobs import SpecError, load_spec, plan


def test_a_valid_spec_loads_and_plans_every_trial(tmp_path: Path) -> None:
    second = 'name = "b"\nprovider = "fake"\nscenario = "noop"\ntimeout = 5\nenv = { CTO_HARNESS_FAKE_X = "1" }'
    spec = load_spec(write_spec(tmp_path / "job.toml", fixtures=("r1-string-slugify", "r3-bill-split"), attempts=3,
                                agents=('name = "a"\nprovider = "fake"', second)))
    assert spec.attempts == 3 and [a.name for a in spec.agents] == ["a", "b"]
    trials = plan(spec)
    assert len(trials) == 2 * 2 * 3
    assert len({(t.agent, t.fixture, t.attempt) for t in trials}) == 12
    assert spec.agents[1].environ({})["CTO_HARNESS_FAKE_X"] == "1"


def test_relative_fixture_paths_resolve_against_the_spec(tmp_path: Path) -> None:
    import shutil

    from cto_harness.fixtures import resolve_fixture

    shutil.copytree(resolve_fixture("r1-string-slugify"), tmp_path / "mine")
    spec = load_spec(write_spec(tmp_path / "job.toml", fixtures=("mine",)))
    assert spec.fixtures == [str((tmp_path / "mine").resolve())]


@pytest.mark.parametrize(("body", "expected"), [
    ('name = "a"\nprovider = "fake"\ncolour = "red"', "agents.0.colour: unknown setting"),
    ('name = "a"\nprovider = "nope"', "agents.0 (a).provider: unknown provider 'nope'"),
    ('name = "a"\nprovider = "fake"\nscenario = "dance"', "agents.0 (a).scenario: unknown scenario 'dance'"),
    ('name = "a"\nprovider = "pi"\nscenario = "fix"', "scenarios exist only for the fake provider"),
    ('name = "a b"\nprovider = "fake"', "agents.0.name: must be 1-64 characters"),
    ('name = "a"\nprovider = "fake"\nenv = { PATH = "/x" }', "agents.0.env: keys must look like CTO_HARNESS_"),
    ('name = "a"\nprovider = "fake"\ntimeout = -1', "agents.0.timeout: Input should be greater than 0"),
])
def test_each_agent_problem_is_one_clear_line(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tmp_path / "job.toml", agents=(body,)))
    assert len(caught.value.problems) == 1, caught.value.problems
    assert expected in caught.value.problems[0]


def test_several_problems_are_several_lines(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "job.toml", extra="bogus = 1", agents=('name = "a"\nprovider = "fake"\nx = 1',))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    problems = caught.value.problems
    assert len(problems) == 2
    assert any("bogus: unknown setting" in p for p in problems)
    assert any("agents.0.x: unknown setting" in p for p in problems)
    assert all(p.startswith(str(path)) for p in problems)


def test_duplicate_agents_and_unknown_fixtures_are_each_a_line(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "job.toml", fixtures=("no-such-fixture", "r1-string-slugify", "r1-string-slugify"),
                      agents=('name = "a"\nprovider = "fake"', 'name = "a"\nprovider = "fake"'))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    problems = caught.value.problems
    assert len(problems) == 3, problems
    assert any("names must be unique: a" in p for p in problems)
    assert any("fixtures.0: unknown fixture" in p for p in problems)
    assert any("fixtures.2: 'r1-string-slugify' is listed twice" in p for p in problems)


def test_unknown_fixture_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"fixtures.0: unknown fixture"):
        load_spec(write_spec(tmp_path / "job.toml", fixtures=("no-such-fixture",)))


def test_not_toml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text("name = \n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(path)


def test_cli_spec_errors_exit_2_without_creating_a_job(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "job.toml", agents=('name = "a"\nprovider = "fake"\nmodle = "x"',))
    result = job_cli("job", "run", "--spec", str(path), "--jobs-dir", str(tmp_path / "jobs"), tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "agents.0.modle: unknown setting" in result.stderr
    assert not (tmp_path / "jobs").exists()
