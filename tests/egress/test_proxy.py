"""The host-side proxy with real sockets: policy on the wire, the ledger, budgets, endpoint failures."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from pathlib import Path

from egress_helpers import MODEL, Listener, call, chat, model_server, running_proxy

from cto_harness.core import ModelPrice
from cto_harness.egress import Budgets


def test_admitted_model_is_forwarded_and_recorded(tmp_path: Path) -> None:
    with model_server() as server, running_proxy(server.base_url, tmp_path) as run:
        reply = call(run.port, "/v1/chat/completions", chat())
        streamed = call(run.port, "/v1/chat/completions", chat(stream=True))
        models = call(run.port, "/v1/models", method="GET")
    assert reply.status == 200 and reply.json()["choices"]
    assert streamed.status == 200 and b"data: [DONE]" in streamed.raw
    assert models.status == 200
    lines = run.lines()
    assert [(x["kind"], x["status"], x["allowed"]) for x in lines] == [
        ("model", 200, True), ("model", 200, True), ("other", 200, True)]
    first, second = lines[0], lines[1]
    assert first["model"] == MODEL and first["path"] == "/v1/chat/completions"
    assert first["input_tokens"] > 0 and first["output_tokens"] > 0 and first["stop_reason"]
    assert second["stream"] is True and second["input_tokens"] > 0 and second["output_tokens"] > 0
    assert second["response_bytes"] == len(streamed.raw)
    assert "request_body" not in first
    text = run.ledger.read_text()
    assert "sk-test-secret" not in text and "Authorization" not in text
    assert run.proxy.tally.calls == 2
    assert run.proxy.policy.spend.input_tokens == first["input_tokens"] + second["input_tokens"]


def test_every_protocol_streamed_has_usage(tmp_path: Path) -> None:
    messages = {"model": MODEL, "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    responses = {"model": MODEL, "stream": True, "input": "fix it"}
    with model_server() as server, running_proxy(server.base_url, tmp_path) as run:
        assert call(run.port, "/v1/messages", messages).status == 200
        assert call(run.port, "/v1/responses", responses).status == 200
        assert call(run.port, "/v1/messages", {**messages, "stream": False}).status == 200
        assert call(run.port, "/v1/responses", {**responses, "stream": False}).status == 200
    for line in run.lines():
        assert line["input_tokens"] > 0 and line["output_tokens"] > 0, line
        assert line["stop_reason"], line


def test_other_model_is_refused_with_403_and_never_forwarded(tmp_path: Path) -> None:
    with model_server() as server, running_proxy(server.base_url, tmp_path) as run:
        reply = call(run.port, "/v1/chat/completions", chat("gpt-5-other"))
        nameless = call(run.port, "/v1/chat/completions", {"messages": []})
        garbage = call(run.port, "/v1/chat/completions", raw=b"not json")
        forwarded = len(server.requests)
    assert (reply.status, reply.headers["x-should-retry"]) == (403, "false")
    assert "gpt-5-other" in reply.json()["error"]["message"]
    assert nameless.status == 403 and garbage.status == 403
    assert forwarded == 0
    assert [line["allowed"] for line in run.lines()] == [False, False, False]
    assert run.proxy.tally.refused_models == ["gpt-5-other", "(none)", "(none)"]


def test_a_body_naming_the_model_twice_is_refused(tmp_path: Path) -> None:
    """Python keeps the last duplicate key; an endpoint in Go matches ``Model`` to ``model`` too."""
    admitted_first = f'{{"model": "{MODEL}", "Model": "gpt-5-other", "messages": []}}'.encode()
    duplicate = f'{{"model": "gpt-5-other", "model": "{MODEL}", "messages": []}}'.encode()
    nested = {**chat(), "tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"Model": {"type": "string"}, "model": {"type": "string"}}}}}]}
    with model_server() as server, running_proxy(server.base_url, tmp_path) as run:
        replies = [call(run.port, "/v1/chat/completions", raw=body) for body in (admitted_first, duplicate)]
        assert [reply.status for reply in replies] == [403, 403]
        assert len(server.requests) == 0
        assert call(run.port, "/v1/chat/completions", nested).status == 200  # inner objects may name anything


def test_provider_prefixed_model_name_is_the_admitted_model(tmp_path: Path) -> None:
    with model_server() as server, running_proxy(server.base_url, tmp_path) as run:
        assert call(run.port, "/v1/chat/completions", chat(f"scripted/{MODEL}")).status == 200


def test_max_calls_lets_exactly_that_many_through(tmp_path: Path) -> None:
    with model_server() as server, running_proxy(server.base_url, tmp_path, budgets=Budgets(max_calls=2)) as run:
        statuses = [call(run.port, "/v1/chat/completions", chat()).status for _ in range(4)]
        forwarded = len(server.requests)
    assert statuses == [200, 200, 429, 429]
    assert forwarded == 2
    assert len(run.proxy.tally.budget) == 2


def test_token_budget_refuses_once_spent_and_cost_is_priced(tmp_path: Path) -> None:
    price = ModelPrice(input_usd_per_mtok=1.0, output_usd_per_mtok=2.0)
    with model_server() as server, running_proxy(server.base_url, tmp_path, budgets=Budgets(max_output_tokens=1),
                                                 price=price) as run:
        first = call(run.port, "/v1/chat/completions", chat())
        second = call(run.port, "/v1/chat/completions", chat())
    assert (first.status, second.status) == (200, 429)
    line = run.lines()[0]
    assert line["cost_usd"] == (line["input_tokens"] * 1.0 + line["output_tokens"] * 2.0) / 1e6
    assert "MAX_OUTPUT_TOKENS" in second.json()["error"]["message"]


def test_keep_alive_connection_carries_several_calls(tmp_path: Path) -> None:
    with model_server() as server, running_proxy(server.base_url, tmp_path) as run:
        conn = http.client.HTTPConnection("127.0.0.1", run.port, timeout=20)
        try:
            statuses = [call(run.port, "/v1/chat/completions", chat(stream=i % 2 == 1), conn=conn).status
                        for i in range(4)]
            refused = call(run.port, "/v1/chat/completions", chat("other"), conn=conn).status
            after = call(run.port, "/v1/chat/completions", chat(), conn=conn).status
        finally:
            conn.close()
    assert statuses == [200] * 4 and (refused, after) == (403, 200)


def test_chunked_request_body_is_read(tmp_path: Path) -> None:
    body = json.dumps(chat()).encode()
    with model_server() as server, running_proxy(server.base_url, tmp_path) as run:
        sock = socket.create_connection(("127.0.0.1", run.port), timeout=20)
        half = len(body) // 2
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                     + f"{half:x}\r\n".encode() + body[:half] + b"\r\n"
                     + f"{len(body) - half:x}\r\n".encode() + body[half:] + b"\r\n0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert run.lines()[0]["model"] == MODEL and run.lines()[0]["request_bytes"] == len(body)


def test_endpoint_refusing_connections_is_named(tmp_path: Path) -> None:
    closed = Listener()
    closed.close()
    with running_proxy(f"http://127.0.0.1:{closed.port}", tmp_path) as run:
        replies = [call(run.port, "/v1/chat/completions", chat()) for _ in range(2)]
    assert [r.status for r in replies] == [502, 502]
    assert dict(run.proxy.tally.endpoint_errors) == {"connection refused": 2}
    assert run.proxy.policy.spend.calls == 0


def test_endpoint_5xx_is_counted(tmp_path: Path) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Failing(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"error": {"message": "overloaded"}}'
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with running_proxy(f"http://127.0.0.1:{httpd.server_address[1]}", tmp_path) as run:
            assert call(run.port, "/v1/chat/completions", chat()).status == 503
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert dict(run.proxy.tally.endpoint_errors) == {"HTTP 503": 1}


def test_bodies_kept_only_when_asked_and_redacted(tmp_path: Path) -> None:
    secret_body = {**chat(), "metadata": {"note": "sk-test-secret-value-123456"}}
    with model_server() as server, running_proxy(server.base_url, tmp_path, keep_bodies=True) as run:
        assert call(run.port, "/v1/chat/completions", secret_body).status == 200
    line = run.lines()[0]
    assert MODEL in line["request_body"] and "choices" in line["response_body"]
    assert "sk-test-secret" not in run.ledger.read_text()


def test_https_endpoint_is_tunnelled_to_exactly_its_host_port(tmp_path: Path) -> None:
    upstream = socket.socket()
    upstream.bind(("127.0.0.1", 0))
    upstream.listen(4)
    port = upstream.getsockname()[1]

    def echo() -> None:
        conn, _ = upstream.accept()
        while data := conn.recv(4096):
            conn.sendall(data.upper())
        conn.close()

    threading.Thread(target=echo, daemon=True).start()
    other = Listener()
    with running_proxy(f"https://127.0.0.1:{port}", tmp_path) as run:
        sock = socket.create_connection(("127.0.0.1", run.port), timeout=20)
        sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.sendall(b"hello tls bytes")
        assert sock.recv(4096) == b"HELLO TLS BYTES"
        sock.shutdown(socket.SHUT_WR)
        sock.recv(10)
        sock.close()
        wrong = socket.create_connection(("127.0.0.1", run.port), timeout=20)
        wrong.sendall(f"CONNECT 127.0.0.1:{other.port} HTTP/1.1\r\n\r\n".encode())
        assert wrong.recv(4096).startswith(b"HTTP/1.1 403")
        wrong.close()
        plain = call(run.port, "/v1/chat/completions", chat())
    other.close()
    upstream.close()
    assert other.hits == 0
    assert plain.status != 200
    tunnel = [x for x in run.lines() if x["kind"] == "tunnel"]
    assert tunnel[0]["allowed"] is False or tunnel[-1]["allowed"] is False
    ok = next(x for x in tunnel if x["allowed"])
    assert ok["request_bytes"] == len(b"hello tls bytes") and ok["response_bytes"] == len(b"hello tls bytes")
