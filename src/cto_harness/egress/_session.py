"""One run's egress, as the runner sees it: open before prepare, finish after the provider exits.

``isolated`` (a sandbox with its own network namespace): the provider's only exit is the
in-namespace forwarder on ``127.0.0.1:<port>``, relayed over a Unix socket in
``<run>/egress/`` (outside the sandbox-writable dirs) to the host-side proxy. No
endpoint admitted means no proxy and no network at all.

``host`` (the operator chose no sandbox): the proxy listens on a loopback TCP port and
the provider is pointed at it. Calls are still on the record and within policy, but
nothing stops a provider from going around the proxy; the report says ``host``.

The ledger is written in ``<run>/egress/`` while the provider runs (out of its reach)
and installed as ``backend/model-calls.jsonl`` once it is gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cto_harness.core import FailureClass, ModelInfo, ModelPrice, Usage
from cto_harness.egress._endpoint import Endpoint, EndpointError, redact_url
from cto_harness.egress._ledger import KEEP_BODIES_ENV, LEDGER_NAME, Ledger
from cto_harness.egress._policy import BudgetError, Budgets, Policy, price_for

if TYPE_CHECKING:
    from cto_harness.egress._proxy import EgressProxy

NetworkMode = Literal["isolated", "host"]
EGRESS_DIR = "egress"
SOCKET_NAME = "proxy.sock"
FORWARDER = Path(__file__).with_name("_forwarder.py")
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")
"""The forwarder runs on a system interpreter when there is one (already in the sandbox's view)."""


class EgressError(ValueError):
    """The endpoint or a budget setting cannot be honoured: the run is blocked before it starts."""


def _prefix(provider: str) -> str:
    return f"CTO_HARNESS_{provider.upper().replace('-', '_')}_"


@dataclass(frozen=True)
class EgressOutcome:
    """What the wire said about the run, for the report and the verdict."""

    network: dict[str, Any]
    measured: Usage | None
    """Null when nothing could be measured (no endpoint, or an https tunnel)."""
    policy_failure: tuple[FailureClass, str] | None = None
    """``model-not-admitted`` or ``budget-exceeded``: the run cannot pass."""
    endpoint_failure: str | None = None
    """The endpoint answered 5xx or could not be reached (with counts)."""
    notes: list[str] = field(default_factory=list)


class Egress:
    """The network side of one provider run: :func:`plan_egress`, then ``start``, then ``finish``."""

    def __init__(self, *, provider: str, mode: NetworkMode, endpoint: Endpoint | None, run_dir: Path,
                 backend_dir: Path, policy: Policy | None, port: int | None, keep_bodies: bool = False) -> None:
        self.provider = provider
        self.mode = mode
        self.endpoint = endpoint
        self.egress_dir = run_dir / EGRESS_DIR
        self.backend_dir = backend_dir
        self.policy = policy
        self.port = port
        self.keep_bodies = keep_bodies
        self.proxy: EgressProxy | None = None
        self._finished: EgressOutcome | None = None

    @property
    def proxied(self) -> bool:
        return self.endpoint is not None

    @property
    def network(self) -> Literal["none", "host", "proxy"]:
        """The sandbox network policy this run needs: "proxy" is "none" plus the egress socket."""
        if self.mode == "host":
            return "host"
        return "proxy" if self.proxied else "none"

    @property
    def socket_path(self) -> Path | None:
        """The Unix socket the in-namespace forwarder relays to (isolated mode with an endpoint)."""
        return self.egress_dir / SOCKET_NAME if self.mode == "isolated" and self.proxied else None

    @property
    def readable(self) -> list[Path]:
        """What the sandbox must show read-only: the egress dir (socket, forwarder) and its interpreter."""
        if self.socket_path is None:
            return []
        python = forwarder_python()
        return [self.egress_dir, *([] if python.startswith(SYSTEM_PYTHONS) else [Path(python)])]

    def provider_environ(self, environ: Mapping[str, str]) -> dict[str, str]:
        """``environ`` with the provider's endpoint variables pointing at the in-namespace address."""
        out = dict(environ)
        if self.endpoint is None or self.endpoint.tunnelled or self.port is None:
            return out
        for suffix in ("BASE_URL", "MODEL_BASE_URL"):
            name = _prefix(self.provider) + suffix
            value = (environ.get(name) or "").strip()
            with contextlib.suppress(EndpointError):
                if value and Endpoint.parse(value) == self.endpoint:
                    out[name] = self.endpoint.inner_url(self.port)
        return out

    def provider_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """The child's environment: https endpoints are reached through the proxy by CONNECT."""
        out = dict(env)
        if self.endpoint is not None and self.endpoint.tunnelled and self.port is not None:
            proxy_url = f"http://127.0.0.1:{self.port}"
            for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
                out[name] = proxy_url
            out["NO_PROXY"] = out["no_proxy"] = ""
        return out

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` behind the in-namespace forwarder (isolated mode with an endpoint)."""
        if self.socket_path is None or self.port is None:
            return list(argv)
        return [forwarder_python(), "-I", "-S", str(self.egress_dir / FORWARDER.name), str(self.port),
                str(self.socket_path), "--", *argv]

    def start(self, secrets: Sequence[str] = ()) -> None:
        """Start the proxy (nothing to start without an endpoint).

        Raises:
            OSError: the proxy could not listen.
        """
        if self.endpoint is None or self.policy is None or self.port is None:
            return
        from cto_harness.egress._proxy import EgressProxy  # asyncio: only a run with an endpoint needs it

        self.egress_dir.mkdir(mode=0o700)
        ledger = Ledger(self.egress_dir / LEDGER_NAME, keep_bodies=self.keep_bodies, secrets=secrets)
        proxy = self.proxy = EgressProxy(self.endpoint, self.policy, ledger)
        try:
            if self.mode == "isolated":
                shutil.copyfile(FORWARDER, self.egress_dir / FORWARDER.name)
                proxy.listen_unix(self.egress_dir / SOCKET_NAME)
            else:
                proxy.listen_tcp(port=self.port)
            proxy.start()
        except BaseException:
            proxy.stop()
            raise

    def finish(self) -> EgressOutcome:
        """Stop the proxy, install the ledger into backend/, and say what happened on the wire."""
        if self._finished is not None:
            return self._finished
        network: dict[str, Any] = {"mode": self.mode,
                                   "endpoint": redact_url(self.endpoint.url) if self.endpoint else None,
                                   "calls": 0, "denied": 0}
        proxy = self.proxy
        if proxy is None:
            self._finished = EgressOutcome(network=network, measured=None)
            self._cleanup()
            return self._finished
        proxy.stop()
        self._install_ledger(proxy.ledger.path)
        tally, spend = proxy.tally, proxy.policy.spend
        tunnelled = self.endpoint is not None and self.endpoint.tunnelled
        network.update(calls=tally.tunnels if tunnelled else tally.calls, denied=tally.denied,
                       ledger=f"backend/{LEDGER_NAME}", endpoint_errors=dict(tally.endpoint_errors))
        measured = None if tunnelled else Usage(
            calls=tally.calls, input_tokens=spend.input_tokens, output_tokens=spend.output_tokens,
            cost_usd=None if spend.cost_usd is None else round(spend.cost_usd, 6))
        policy_failure: tuple[FailureClass, str] | None = None
        if tally.refused_models:
            asked = sorted(set(tally.refused_models))
            policy_failure = ("model-not-admitted", (
                f"the provider asked the endpoint for model {', '.join(asked)}; only "
                f"{proxy.policy.model_provider}/{proxy.policy.model} is admitted "
                f"({len(tally.refused_models)} call(s) refused by the egress proxy)"))
        elif tally.budget:
            policy_failure = ("budget-exceeded", (
                f"{tally.budget[0]}; {len(tally.budget)} further call(s) refused by the egress proxy"))
        endpoint_failure = None
        if tally.endpoint_errors:
            parts = ", ".join(f"{what} x{count}" for what, count in sorted(tally.endpoint_errors.items()))
            endpoint_failure = f"the model endpoint {network['endpoint']} failed: {parts}"
        notes = []
        if spend.unmetered_calls:
            notes.append(f"{spend.unmetered_calls} model call(s) carried no usage in their response")
        self._finished = EgressOutcome(network=network, measured=measured, policy_failure=policy_failure,
                                       endpoint_failure=endpoint_failure, notes=notes)
        self._cleanup()
        return self._finished

    def _install_ledger(self, source: Path) -> None:
        dest = self.backend_dir / LEDGER_NAME
        if dest.is_symlink() or dest.is_file():
            dest.unlink()  # whatever the provider put there is not the harness's record
        elif dest.exists():
            shutil.rmtree(dest)
        shutil.move(source, dest)

    def _cleanup(self) -> None:
        for name in (FORWARDER.name, SOCKET_NAME):
            with contextlib.suppress(FileNotFoundError):
                (self.egress_dir / name).unlink()
        with contextlib.suppress(OSError):
            self.egress_dir.rmdir()


def forwarder_python() -> str:
    for candidate in SYSTEM_PYTHONS:
        if os.access(candidate, os.X_OK):
            return candidate
    return os.path.realpath(sys.executable)


def plan_egress(*, provider: str, model: ModelInfo, run_dir: Path, backend_dir: Path, environ: Mapping[str, str],
                prices: Mapping[str, ModelPrice], isolated: bool) -> Egress:
    """Decide the run's egress for ``model.base_url`` (the admitted endpoint, if any); start nothing.

    Raises:
        EgressError: the endpoint is not a usable http(s) URL, a budget setting is malformed,
            or a budget cannot be enforced (no endpoint, an https tunnel, cost without a price).
    """
    mode: NetworkMode = "isolated" if isolated else "host"
    try:
        endpoint = Endpoint.parse(model.base_url) if model.base_url else None
        budgets = Budgets.from_environ(environ, _prefix(provider))
    except (EndpointError, BudgetError) as exc:
        raise EgressError(str(exc)) from exc
    price = price_for(prices, model.provider, model.model)
    if endpoint is None:
        if budgets.any:
            raise EgressError(f"budgets are set for {provider} but no endpoint is admitted "
                              f"({_prefix(provider)}BASE_URL): the harness could not enforce them")
        return Egress(provider=provider, mode=mode, endpoint=None, run_dir=run_dir, backend_dir=backend_dir,
                      policy=None, port=None)
    if endpoint.tunnelled and budgets.any:
        raise EgressError(f"budgets are set for {provider} but {redact_url(endpoint.url)} is https: the proxy only "
                          "tunnels it and cannot count tokens; use an http:// endpoint or drop the budgets")
    if budgets.max_cost_usd is not None and price is None:
        raise EgressError(f"{_prefix(provider)}MAX_COST_USD is set but the operator config has no price for "
                          f"{model.provider}/{model.model} ([prices.\"{model.provider}/{model.model}\"])")
    if isolated:
        port = endpoint.inner_port()
    else:
        from cto_harness.egress._proxy import free_loopback_port

        port = free_loopback_port()
    policy = Policy(model=model.model, model_provider=model.provider, budgets=budgets, price=price)
    return Egress(provider=provider, mode=mode, endpoint=endpoint, run_dir=run_dir, backend_dir=backend_dir,
                  policy=policy, port=port, keep_bodies=environ.get(KEEP_BODIES_ENV) == "1")
