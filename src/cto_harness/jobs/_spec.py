"""The job spec: agents x fixtures x attempts, loaded from TOML and validated strictly."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ENV_KEY = re.compile(r"^CTO_HARNESS_[A-Z0-9_]+$")


class SpecError(ValueError):
    """The job spec is invalid: one clear line per problem (a usage error)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class AgentSpec(BaseModel):
    """One row of the comparison: a provider with its settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """Unique in the job; the row label and the trial dir component."""
    provider: str
    """Provider adapter name (as for `cto-harness run --provider`)."""
    scenario: str | None = None
    """Fake-lane scenario (fake provider only)."""
    model_provider: str | None = None
    """Admitted model provider (real lanes)."""
    model: str | None = None
    """Admitted model (real lanes)."""
    timeout: float | None = Field(default=None, gt=0)
    """Provider timeout in seconds for each trial."""
    base_url: str | None = None
    """Model endpoint, passed as CTO_HARNESS_<P>_BASE_URL (MODEL_BASE_URL for case)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Anything else, as CTO_HARNESS_<P>_... settings."""

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-64 characters of letters, digits, '.', '_' or '-'")
        return value

    @field_validator("env")
    @classmethod
    def _env_ok(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [key for key in value if not _ENV_KEY.match(key)]
        if bad:
            raise ValueError(f"keys must look like CTO_HARNESS_<P>_...: {', '.join(sorted(bad))}")
        return value

    def environ(self, base: dict[str, str]) -> dict[str, str]:
        """The environment a trial of this agent sees: ``base`` plus this agent's settings."""
        merged = dict(base)
        merged.update(self.env)
        if self.base_url is not None:
            suffix = "MODEL_BASE_URL" if self.provider == "case" else "BASE_URL"
            merged[f"CTO_HARNESS_{self.provider.upper().replace('-', '_')}_{suffix}"] = self.base_url
        return merged


class JobSpec(BaseModel):
    """What to run: every agent on every fixture, ``attempts`` times each."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "job"
    """Part of the job dir name."""
    fixtures: list[str] = Field(min_length=1)
    """Built-in fixture ids or fixture directory paths."""
    attempts: int = Field(default=1, ge=1, le=1000)
    """k: independent trials per (agent, fixture)."""
    concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    """Trials at once (local executor)."""
    executor: Literal["local", "ray"] = "local"
    agents: list[AgentSpec] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-64 characters of letters, digits, '.', '_' or '-'")
        return value


def _problems(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"])
        msg = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            msg = "unknown setting"
        lines.append(f"{loc}: {msg}" if loc else msg)
    return lines


def parse_spec(data: dict[str, object], *, base: Path | None = None) -> JobSpec:
    """Validate a spec mapping; relative fixture paths resolve against ``base``.

    Raises:
        SpecError: one line per problem, including unknown providers, settings and fixtures.
    """
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_problems(exc)) from None
    spec = spec.model_copy(update={"fixtures": [_fixture_ref(f, base) for f in spec.fixtures]})
    problems = _semantic_problems(spec)
    if problems:
        raise SpecError(problems)
    return spec


def load_spec(path: Path) -> JobSpec:
    """Read a job spec TOML file.

    Raises:
        SpecError: unreadable, not TOML, or invalid.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([f"{path}: cannot read: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError([f"{path}: not valid TOML: {exc}"]) from None
    try:
        return parse_spec(data, base=path.parent)
    except SpecError as exc:
        raise SpecError([f"{path}: {line}" for line in exc.problems]) from None


def _fixture_ref(ref: str, base: Path | None) -> str:
    from cto_harness.fixtures import builtin_fixture_ids

    if ref in builtin_fixture_ids() or base is None or Path(ref).is_absolute():
        return ref
    return str((base / ref).resolve())


def _semantic_problems(spec: JobSpec) -> list[str]:
    from cto_harness.fixtures import UnknownFixtureError, resolve_fixture
    from cto_harness.providers import provider_names
    from cto_harness.providers.fake import SCENARIOS

    problems = []
    names = [agent.name for agent in spec.agents]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"agents: names must be unique: {', '.join(dupes)}")
    for i, agent in enumerate(spec.agents):
        where = f"agents.{i} ({agent.name})"
        if agent.provider not in provider_names() and ":" not in agent.provider:
            problems.append(f"{where}.provider: unknown provider {agent.provider!r}; "
                            f"valid: {', '.join(provider_names())}")
        if agent.scenario is not None and agent.provider != "fake":
            problems.append(f"{where}.scenario: scenarios exist only for the fake provider")
        elif agent.scenario is not None and agent.scenario not in SCENARIOS:
            problems.append(f"{where}.scenario: unknown scenario {agent.scenario!r}; valid: {', '.join(SCENARIOS)}")
    keys: dict[str, str] = {}
    for i, fixture in enumerate(spec.fixtures):
        try:
            resolve_fixture(fixture)
        except UnknownFixtureError as exc:
            problems.append(f"fixtures.{i}: {str(exc).strip(chr(39) + chr(34))}")
        key = fixture_key(fixture)
        if fixture in keys.values():
            problems.append(f"fixtures.{i}: {fixture!r} is listed twice")
        elif key in keys:
            problems.append(f"fixtures.{i}: {fixture!r} and {keys[key]!r} share the directory name {key!r}")
        keys[key] = fixture
    return problems


def fixture_key(ref: str) -> str:
    """The fixture's name in trial dirs and tables: the id, or a fixture directory's name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(ref).name).strip("-.")[:64] or "fixture"
