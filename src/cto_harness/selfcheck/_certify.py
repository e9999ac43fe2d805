"""Certify a real client: run it on every built-in fixture against the scripted model.

For each fixture a :class:`ScriptedModelServer` is started on loopback with the
fixture's ``model-script.toml``, and an ordinary Stage 2 run of the client is made with
``CTO_HARNESS_<P>_MODEL_PROVIDER=scripted``, ``_MODEL`` = the script's model and
``_BASE_URL`` = the server. A fixture is certified when its report says verdict
``pass``, lane ``real``, usage measured on the wire by the egress proxy (tokens in and out),
and the server log holds the client's model calls. Nothing leaves loopback.

Before any run, ``certify`` refuses a provider it cannot certify (only Case and the real clients
speak to the scripted model) and probes loopback with its own scripted server: a fresh
``unshare -rn`` namespace has ``lo`` down, and every run would otherwise fail the same way.
"""

from __future__ import annotations

import os
import socket
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cto_harness.core import harness_home
from cto_harness.fixtures import builtin_fixture_ids, resolve_fixture
from cto_harness.model_server import Script, ScriptedModelServer, load_script
from cto_harness.providers import MODEL_SERVER_LOG_ENV, RunOptions, env_var
from cto_harness.runner import RunRequest, RunResult, run_stage2

if TYPE_CHECKING:
    from cto_harness.selfcheck._lab import CheckResult, Lab

__all__ = [
    "ANTHROPIC_CLIENTS",
    "CERTIFIABLE",
    "REAL_CLIENTS",
    "CertifyResult",
    "FixtureCertification",
    "LoopbackUnreachable",
    "ScriptedRun",
    "UncertifiableProviderError",
    "certify",
    "is_installed",
    "probe_loopback",
    "real_client_checks",
    "run_scripted",
]

REAL_CLIENTS = ("claude-code", "codex", "mini-swe-agent", "pi")
CERTIFIABLE = ("case", *REAL_CLIENTS)
"""Providers that talk to the scripted model (Case through its pi library); fake and command do not."""
ANTHROPIC_CLIENTS = frozenset({"claude-code"})
"""Clients that speak Anthropic Messages and take the base URL without ``/v1``."""
SCRIPTED_MODEL_PROVIDER = "scripted"
CASE_MODEL_PROVIDER = "openai"
"""Case's pi-ai accepts a built-in model provider (a custom one is "Model not found"); its
key variable gets the adapter's placeholder, its endpoint is the scripted server."""
MODEL_SCRIPT = "model-script.toml"
MODEL_PROTOCOLS = frozenset({"openai-chat", "openai-responses", "anthropic-messages"})


class UncertifiableProviderError(ValueError):
    """The provider is not a real client that talks to the scripted model (a usage error)."""


class LoopbackUnreachable(RuntimeError):
    """The scripted model server cannot be reached on loopback; nothing was run."""


def probe_loopback(script: Script, *, timeout_s: float = 3.0) -> None:
    """Start a scripted server and connect to it once.

    Raises:
        LoopbackUnreachable: listening or connecting failed (e.g. ``lo`` is down).
    """
    try:
        with ScriptedModelServer(script) as server:
            parsed = urllib.parse.urlsplit(server.base_url)
            with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 80), timeout=timeout_s):
                pass
    except OSError as exc:
        raise LoopbackUnreachable(
            f"loopback is unreachable ({exc.strerror or exc}): certify talks to its scripted model on 127.0.0.1; "
            "bring loopback up first (in a fresh `unshare -rn` namespace: `ip link set lo up`)") from exc


@dataclass(frozen=True)
class ScriptedRun:
    """One harness run of a client against a scripted (or deliberately absent) model."""

    result: RunResult
    model_requests: int
    """Model calls the server logged (chat, responses or messages requests)."""
    log: list[dict[str, Any]] = field(default_factory=list)


def is_installed(name: str, environ: Mapping[str, str]) -> bool:
    """True when ``name`` has an active admission (or an explicit ``CTO_HARNESS_<P>_BIN``)."""
    from cto_harness.supply_chain import active_admissions

    if environ.get(env_var(name, "BIN")):
        return True
    return bool(active_admissions(harness_home(environ), name))


def scripted_environ(name: str, environ: Mapping[str, str], *, model: str, base_url: str,
                     log: Path | None) -> dict[str, str]:
    """``environ`` plus the settings pointing client ``name`` at a scripted model."""
    env = dict(environ)
    case = name == "case"
    env[env_var(name, "MODEL_PROVIDER")] = CASE_MODEL_PROVIDER if case else SCRIPTED_MODEL_PROVIDER
    env[env_var(name, "MODEL")] = model
    env[env_var(name, "MODEL_BASE_URL" if case else "BASE_URL")] = base_url
    if log is not None:
        env[MODEL_SERVER_LOG_ENV] = str(log)
    else:
        env.pop(MODEL_SERVER_LOG_ENV, None)
    return env


def _client_url(name: str, root: str) -> str:
    return root if name in ANTHROPIC_CLIENTS else f"{root}/v1"


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def run_scripted(name: str, fixture: str, *, runs_dir: Path, environ: Mapping[str, str],
                 script: Script | None = None, endpoint_down: bool = False,
                 timeout_s: float | None = None) -> ScriptedRun:
    """Run client ``name`` on ``fixture`` against a scripted model on loopback.

    ``script`` defaults to the fixture's ``model-script.toml``. ``endpoint_down`` points
    the client at a loopback port where nothing listens.

    Raises:
        ScriptError: the script is invalid.
        UnknownFixtureError, UnknownProviderError, ConfigError: usage errors.
    """
    if script is None:
        script = load_script(resolve_fixture(fixture) / MODEL_SCRIPT)
    options = RunOptions(timeout_s=timeout_s)
    if endpoint_down:
        with tempfile.TemporaryDirectory(prefix="cto-harness-certify-") as tmp:
            # A log nobody writes: the adapter can tell that no call reached the endpoint.
            env = scripted_environ(name, environ, model=script.model, log=Path(tmp) / "model-server.jsonl",
                                   base_url=_client_url(name, f"http://127.0.0.1:{_closed_port()}"))
            result = run_stage2(RunRequest(provider=name, fixture=fixture, runs_dir=runs_dir, options=options,
                                           environ=env))
        return ScriptedRun(result=result, model_requests=0)
    with tempfile.TemporaryDirectory(prefix="cto-harness-certify-") as tmp:
        log = Path(tmp) / "model-server.jsonl"
        with ScriptedModelServer(script, log_path=log) as server:
            env = scripted_environ(name, environ, model=script.model,
                                   base_url=_client_url(name, server.base_url), log=log)
            result = run_stage2(RunRequest(provider=name, fixture=fixture, runs_dir=runs_dir, options=options,
                                           environ=env))
            entries = list(server.requests)
    calls = sum(1 for e in entries if e.get("protocol") in MODEL_PROTOCOLS)
    return ScriptedRun(result=result, model_requests=calls, log=entries)


@dataclass(frozen=True)
class FixtureCertification:
    fixture: str
    verdict: str
    failure_class: str | None
    lane: str
    usage_parsed: bool
    model_requests: int
    duration_s: float
    run_dir: Path
    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.verdict == "pass" and self.lane == "real" and self.usage_parsed and self.model_requests > 0


@dataclass(frozen=True)
class CertifyResult:
    client: str
    fixtures: list[FixtureCertification]

    @property
    def ok(self) -> bool:
        return bool(self.fixtures) and all(f.ok for f in self.fixtures)

    def table(self) -> str:
        header = f"{'fixture':22} {'verdict':8} {'class':24} {'lane':10} {'usage':6} {'calls':5} {'secs':>6}  run dir"
        rows = [header, "-" * len(header)]
        for f in self.fixtures:
            rows.append(f"{f.fixture:22} {f.verdict:8} {f.failure_class or '-':24} {f.lane:10} "
                        f"{'yes' if f.usage_parsed else 'NO':6} {f.model_requests:5} {f.duration_s:6.1f}  {f.run_dir}")
        passed = sum(f.ok for f in self.fixtures)
        rows.append(f"{self.client}: {passed}/{len(self.fixtures)} fixtures certified"
                    + ("" if self.ok else " -- NOT CERTIFIED"))
        return "\n".join(rows)


def certify(name: str, *, runs_dir: Path, environ: Mapping[str, str], fixtures: Sequence[str] | None = None,
            timeout_s: float | None = None,
            on_fixture: Callable[[FixtureCertification], None] | None = None) -> CertifyResult:
    """Run client ``name`` on each fixture (default: every built-in one) with its scripted model.

    Raises:
        UncertifiableProviderError: ``name`` is not one of ``CERTIFIABLE``.
        UnknownFixtureError: a fixture is not built in.
        ScriptError: a fixture's model script is invalid.
        LoopbackUnreachable: the probe of loopback failed; no run was made.
    """
    if name not in CERTIFIABLE:
        raise UncertifiableProviderError(
            f"certify runs a real client against the scripted model; {name!r} is not one "
            f"(certifiable: {', '.join(CERTIFIABLE)}; `cto-harness health` checks the fake lane)")
    selected = list(fixtures or builtin_fixture_ids())
    scripts = [load_script(resolve_fixture(fixture) / MODEL_SCRIPT) for fixture in selected]
    if scripts:
        probe_loopback(scripts[0])
    rows: list[FixtureCertification] = []
    for fixture, script in zip(selected, scripts, strict=True):
        run = run_scripted(name, fixture, runs_dir=runs_dir, environ=environ, script=script, timeout_s=timeout_s)
        report = run.result.report
        measured = report.usage.measured
        row = FixtureCertification(
            fixture=fixture, verdict=report.verdict, failure_class=report.failure_class, lane=report.lane,
            usage_parsed=measured is not None and (measured.input_tokens or 0) > 0
            and (measured.output_tokens or 0) > 0,
            model_requests=run.model_requests, duration_s=report.duration_s, run_dir=run.result.run_dir,
            reasons=tuple(report.reasons))
        rows.append(row)
        if on_fixture is not None:
            on_fixture(row)
    return CertifyResult(client=name, fixtures=rows)


def real_client_checks() -> dict[str, Callable[[Lab], CheckResult]]:
    """Health checks ``real_client_<name>``: certify r1 when installed, ``skip`` (never ``ok``) when not.

    The client is looked up in the operator's harness home (``CTO_HARNESS_HOME``), the
    run goes into the lab's scratch dir.
    """
    return {f"real_client_{name.replace('-', '_')}": _real_client_check(name) for name in REAL_CLIENTS}


def _real_client_check(name: str) -> Callable[[Lab], CheckResult]:
    def check(lab: Lab) -> CheckResult:
        from cto_harness.selfcheck._lab import CheckResult

        expected = {"verdict": "pass", "lane": "real", "usage_parsed": True}
        environ = {**lab.base_environ(), "CTO_HARNESS_HOME": str(harness_home(os.environ))}
        if not is_installed(name, environ):
            return CheckResult.skip(expected, f"{name} is not installed (cto-harness provider install {name})")
        result = certify(name, runs_dir=lab.workdir / "real-clients", environ=environ,
                         fixtures=["r1-string-slugify"], timeout_s=300)
        row = result.fixtures[0]
        observed = {"verdict": row.verdict, "failure_class": row.failure_class, "lane": row.lane,
                    "usage_parsed": row.usage_parsed, "model_requests": row.model_requests}
        return CheckResult(ok=row.ok, expected=expected, observed=observed, run_dir=str(row.run_dir))

    check.__doc__ = f"{name} passes r1-string-slugify against the scripted model (skipped when not installed)."
    return check
