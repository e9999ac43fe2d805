"""What the real-client adapters (claude-code, codex, mini-swe-agent, pi, command) share.

Gates come from ``_gates`` (admission, model admission, credentials, env allowlist);
this module adds what is specific to installed registry clients: the tree re-hash of
launcher-admitted clients, the one opening of every ``prepare()`` (``open_client``: the
validated ``CTO_HARNESS_<P>_*`` settings, the task prompt, the model endpoint, the API
key), JSON-lines parsing and keeping the scripted model server's exchange log as evidence.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from cto_harness.evidence import atomic_copy_file, read_agent_file
from cto_harness.providers._gates import (
    child_env,
    pass_through_credentials,
    preflight_gate,
    setting,
)
from cto_harness.providers._protocol import Blocked, Gate, Invocation, RunContext
from cto_harness.providers._settings import ClientSettings
from cto_harness.supply_chain import load_clients, verify_launcher

PLACEHOLDER_API_KEY = "sk-cto-harness-loopback-placeholder"
"""Sent to a configured loopback endpoint when no credential was passed (scripted lanes)."""
MODEL_SERVER_LOG_ENV = "CTO_HARNESS_MODEL_SERVER_LOG"
"""A JSONL exchange log of the model endpoint; copied into ``backend/model-server.jsonl``."""
MODEL_SERVER_EVIDENCE = "model-server.jsonl"


def client_preflight(ctx: RunContext, name: str) -> Gate:
    """Executable + model admission, then the installed tree of a launcher client."""
    gate = preflight_gate(ctx, name, base_url=base_url(ctx, name))
    spec = load_clients().get(name)
    version = spec.version if spec and gate.provider.admission and \
        gate.provider.admission.get("source_url") == spec.source_url else None
    gate = replace(gate, provider=gate.provider.model_copy(update={"version": version}))
    if gate.blocked is not None or gate.provider.executable is None:
        return gate
    problem = verify_launcher(Path(gate.provider.executable))
    if problem is None:
        return gate
    return replace(gate, blocked=Blocked("provider-digest-mismatch",
                                         f"{name}: {problem}; no provider process was started",
                                         "provider-digest-mismatch.txt"))


def base_url(ctx: RunContext, name: str) -> str | None:
    """``CTO_HARNESS_<P>_BASE_URL`` as recorded in the report (validated later, in ``open_client``)."""
    value = setting(ctx, name, "BASE_URL")
    return value.rstrip("/") if value else None


@dataclass(frozen=True)
class Credentials:
    api_key: str | None
    passed: dict[str, str]
    """Variables passed through by name (``CTO_HARNESS_<P>_PASS_ENV``)."""

    @property
    def secrets(self) -> tuple[str, ...]:
        values = [*self.passed.values(), *([self.api_key] if self.api_key else [])]
        return tuple(v for v in values if v and v != PLACEHOLDER_API_KEY)


def credentials(ctx: RunContext, name: str, key_vars: tuple[str, ...], *, reserved: frozenset[str],
                url: str | None) -> Credentials:
    """The API key from the first passed-through ``key_vars`` variable.

    Without one, a configured endpoint (``url``) gets a placeholder key (a scripted
    loopback model checks none); without an endpoint the client's own default applies and
    it fails on its own if it needs a key.
    """
    passed = pass_through_credentials(ctx, name, reserved=reserved)
    key = next((passed[v] for v in key_vars if v in passed), None)
    if key is None and url is not None:
        key = PLACEHOLDER_API_KEY
    return Credentials(api_key=key, passed=passed)


def write_prompt(ctx: RunContext) -> tuple[str, Path]:
    """The task prompt (also written to ``task/prompt.md``)."""
    prompt = (
        f"# {ctx.fixture.title}\n\n{ctx.fixture.instructions.strip()}\n\n"
        "The repository is the current working directory. Make the change directly in the files; "
        "do not ask questions, there is nobody to answer them.\n"
    )
    path = ctx.task_dir / "prompt.md"
    path.write_text(prompt, encoding="utf-8")
    return prompt, path


def isolated_dir(ctx: RunContext, name: str) -> Path:
    path = ctx.backend_dir / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def iter_jsonl(path: Path, limit: int = 64 * 1024 * 1024) -> Iterator[dict[str, Any]]:
    """JSON objects of a JSON-lines file; other lines are skipped."""
    data = read_agent_file(path, limit=limit) or b""
    for line in data.splitlines():
        line = line.strip()
        if not line.startswith(b"{"):
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # a line nested 200,000 deep is not a result either
            continue
        if isinstance(obj, dict):
            yield obj


def keep_model_server_log(ctx: RunContext) -> None:
    """Copy the endpoint's exchange log named by ``CTO_HARNESS_MODEL_SERVER_LOG`` into backend/."""
    source = ctx.environ.get(MODEL_SERVER_LOG_ENV)
    if source and Path(source).is_file():
        # backend/ is the agent's to write: whatever it left at that name (a symlink to a host
        # file, a directory) is replaced, never written through.
        atomic_copy_file(Path(source), ctx.backend_dir / MODEL_SERVER_EVIDENCE)


MODEL_CALL_PROTOCOLS = frozenset({"openai-chat", "openai-responses", "anthropic-messages"})


@dataclass(frozen=True)
class EndpointLog:
    """What the scripted model server's exchange log says about the model endpoint."""

    calls: int
    """Model calls answered (any status)."""
    input_tokens: int
    output_tokens: int
    failures: list[str]
    """``HTTP <status>: <message>`` of every call the endpoint failed (>= 500), and held calls."""

    @property
    def summary(self) -> str:
        if self.failures:
            return f"the model endpoint failed {len(self.failures)} of {self.calls} call(s): {self.failures[-1]}"
        if self.calls == 0:
            return "the model endpoint received no call (refused or unreachable)"
        return f"the model endpoint answered {self.calls} call(s)"


def read_model_server_log(ctx: RunContext) -> EndpointLog | None:
    """The exchange log named by ``CTO_HARNESS_MODEL_SERVER_LOG`` (None when none is named).

    A named log that does not exist means no call reached the endpoint.
    """
    source = ctx.environ.get(MODEL_SERVER_LOG_ENV)
    if not source:
        return None
    calls = inp = out = 0
    failures: list[str] = []
    for entry in iter_jsonl(Path(source)):
        if entry.get("protocol") not in MODEL_CALL_PROTOCOLS:
            continue
        calls += 1
        status = as_int(entry.get("status"))
        response = entry.get("response") if isinstance(entry.get("response"), dict) else {}
        if entry.get("kind") == "hang":
            failures.append("held open without an answer")
        elif status is not None and status >= 500:
            error = response.get("error") if isinstance(response, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            failures.append(f"HTTP {status}: {message or 'server error'}")
        usage = response.get("usage") if isinstance(response, dict) else None
        if isinstance(usage, dict):
            inp += as_int(usage.get("prompt_tokens", usage.get("input_tokens"))) or 0
            out += as_int(usage.get("completion_tokens", usage.get("output_tokens"))) or 0
    return EndpointLog(calls=calls, input_tokens=inp, output_tokens=out, failures=failures[-20:])


def as_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def as_float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def add(a: int | None, b: Any) -> int | None:
    value = as_int(b)
    if value is None:
        return a
    return value if a is None else a + value


def tail_text(path: Path, limit: int = 600) -> str:
    data = read_agent_file(path, limit=limit, tail=True) or b""
    return " ".join(data.decode("utf-8", "replace").split())


def truthy(mapping: Mapping[str, Any], key: str) -> bool:
    return bool(mapping.get(key))


S = TypeVar("S", bound=ClientSettings)


@dataclass(frozen=True)
class ClientRun(Generic[S]):
    """The common opening of a real client's ``prepare()``; see ``open_client``."""

    name: str
    gate: Gate
    settings: S
    executable: str
    prompt: str
    prompt_file: Path
    creds: Credentials

    @property
    def url(self) -> str | None:
        return self.settings.base_url

    def invocation(self, ctx: RunContext, argv: Sequence[str], *, extra: Mapping[str, str],
                   home: Path | None = None) -> Invocation:
        """Workspace cwd, allowlisted env, the settings' timeout, the admitted digest re-checked."""
        return Invocation(
            argv=argv,
            cwd=ctx.workspace,
            env=child_env(ctx, home=home or isolated_dir(ctx, "home"), extra=extra, credentials=self.creds.passed),
            timeout_s=self.settings.timeout(ctx.options),
            expected_sha256=self.gate.provider.sha256,
            secrets=self.creds.secrets,
        )


def open_client(ctx: RunContext, gate: Gate, name: str, settings_type: type[S], *,
                key_vars: tuple[str, ...] = (), reserved: frozenset[str] = frozenset()) -> ClientRun[S]:
    """Validate ``CTO_HARNESS_<name>_*`` into ``settings_type``, write the prompt, gather credentials.

    Raises:
        ProviderSettingError: a setting is present but unusable (the run is blocked).
    """
    assert gate.provider.executable
    settings = settings_type.from_environ(ctx.environ, name)
    creds = credentials(ctx, name, key_vars, reserved=reserved, url=settings.base_url)
    prompt, prompt_file = write_prompt(ctx)
    return ClientRun(name=name, gate=gate, settings=settings, executable=gate.provider.executable,
                     prompt=prompt, prompt_file=prompt_file, creds=creds)
