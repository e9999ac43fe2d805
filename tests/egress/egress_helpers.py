"""Real sockets around the egress proxy: a scripted model upstream, stdlib HTTP clients."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cto_harness.core import ModelPrice
from cto_harness.egress import Budgets, EgressProxy, Endpoint, Ledger, Policy
from cto_harness.model_server import ScriptedModelServer, parse_script
from cto_harness.selfcheck import CountingListener as Listener  # noqa: F401  (re-exported for the egress tests)

MODEL = "scripted-test"
SCRIPT = {"model": MODEL, "steps": [{"action": "read", "path": "strings.py"}, {"action": "finish", "text": "done"}]}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)


def call(port: int, path: str, body: Any = None, *, method: str = "POST", headers: dict[str, str] | None = None,
         raw: bytes | None = None, conn: http.client.HTTPConnection | None = None) -> Reply:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json",
                                                          "Authorization": "Bearer sk-test-secret-value-123456",
                                                          **(headers or {})})
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        if own:
            conn.close()


def chat(model: str = MODEL, *, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "fix it"}], "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


@contextmanager
def model_server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(parse_script(SCRIPT, "egress-test")) as server:
        yield server


@dataclass
class Running:
    proxy: EgressProxy
    port: int
    ledger: Path

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.ledger.read_text().splitlines()]


@contextmanager
def running_proxy(url: str, tmp: Path, *, budgets: Budgets | None = None, price: ModelPrice | None = None,
                  keep_bodies: bool = False) -> Iterator[Running]:
    ledger = tmp / "model-calls.jsonl"
    policy = Policy(model=MODEL, model_provider="scripted", budgets=budgets or Budgets(), price=price)
    proxy = EgressProxy(Endpoint.parse(url), policy, Ledger(ledger, keep_bodies=keep_bodies,
                                                            secrets=["sk-test-secret-value-123456"]))
    port = proxy.listen_tcp()
    proxy.start()
    try:
        yield Running(proxy, port, ledger)
    finally:
        proxy.stop()


def bwrap_netns_works() -> bool:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False
    proc = subprocess.run([bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net",
                           "--unshare-pid", "--die-with-parent", "--", "/bin/true"], capture_output=True,
                          timeout=20, check=False)
    return proc.returncode == 0
