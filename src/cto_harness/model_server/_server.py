"""The loopback HTTP server speaking the OpenAI and Anthropic wire protocols."""

from __future__ import annotations

import gzip
import ipaddress
import json
import socket
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit

from cto_harness.model_server import _anthropic, _openai_chat, _openai_responses
from cto_harness.model_server._common import (
    JSON,
    Context,
    Ids,
    Rendered,
    RequestError,
    usage_for,
)
from cto_harness.model_server._planner import decide
from cto_harness.model_server._script import Script

REDACTED_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie", "x-goog-api-key"}
)
REDACTED = "[redacted]"
MAX_BODY = 64 * 1024 * 1024


class NonLoopbackHostError(ValueError):
    """The server was asked to listen on an address other than loopback."""


def check_loopback(host: str) -> None:
    """Accept ``localhost`` and loopback IPv4/IPv6 literals only.

    Raises:
        NonLoopbackHostError: for anything else.
    """
    if host.lower() == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise NonLoopbackHostError(
            f"refusing to serve on non-loopback host {host!r}: the scripted model server "
            "listens on loopback only (127.0.0.1, ::1 or localhost)"
        )


def redact_headers(headers: Any) -> dict[str, str]:
    """Lower-cased header names to values, credentials replaced by ``[redacted]``."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = str(name).lower()
        shown = REDACTED if key in REDACTED_HEADERS else str(value)
        out[key] = f"{out[key]}, {shown}" if key in out else shown
    return out


class ScriptedModelServer:
    """A scripted model on loopback, started on a background thread.

    Use as a context manager (or ``start()`` / ``stop()``)::

        with ScriptedModelServer(load_script(path), log_path=tmp / "model.jsonl") as server:
            env["ANTHROPIC_BASE_URL"] = server.base_url
            env["OPENAI_BASE_URL"] = server.openai_base_url
    """

    def __init__(
        self,
        script: Script,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: Path | None = None,
    ) -> None:
        check_loopback(host)
        self.script = script
        self.host = host
        self.log_path = Path(log_path) if log_path is not None else None
        self.requests: list[dict[str, Any]] = []
        """Every exchange, in arrival order (the same entries as the JSONL log)."""
        self._requested_port = port
        self._ids = Ids()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        """Set by stop(): releases requests held open on purpose (Case ``hang``)."""
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> Self:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server_class = type("_BoundHTTPServer", (_HTTPServer,), {"address_family": family})
        httpd: _HTTPServer = server_class((self.host.strip("[]"), self._requested_port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"scripted-model-server:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the scripted model server is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v1``: Anthropic clients add it themselves)."""
        if self._httpd is None:
            raise RuntimeError("the scripted model server is not running")
        address = str(self._httpd.server_address[0])
        host = f"[{address}]" if ":" in address else address
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url + "/v1"``, the form OpenAI clients expect."""
        return f"{self.base_url}/v1"

    # -- internals -------------------------------------------------------------------
    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            entry["seq"] = len(self.requests) + 1
            self.requests.append(entry)
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                with self.log_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")

    def _models(self) -> JSON:
        model = self._model_object(self.script.model)
        return {
            "object": "list",
            "data": [model],
            "has_more": False,
            "first_id": model["id"],
            "last_id": model["id"],
        }

    @staticmethod
    def _model_object(model_id: str) -> JSON:
        # One object that satisfies both the OpenAI and the Anthropic model schema.
        return {
            "id": model_id,
            "object": "model",
            "type": "model",
            "created": 0,
            "created_at": "2025-01-01T00:00:00Z",
            "display_name": model_id,
            "owned_by": "cto-harness",
        }


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: ScriptedModelServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (pi-ai retrying after a 500) is not worth a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


_POST_ROUTES = {
    "/chat/completions": _openai_chat.NAME,
    "/responses": _openai_responses.NAME,
    "/messages": _anthropic.NAME,
    "/messages/count_tokens": "anthropic-count-tokens",
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    _entry: dict[str, Any]
    _streaming = False
    server_version = "cto-harness-scripted-model/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log; the JSONL log has everything."""

    # -- routing -----------------------------------------------------------------------
    @property
    def _route(self) -> str:
        path = unquote(urlsplit(self.path).path).rstrip("/") or "/"
        if path == "/v1" or path.startswith("/v1/"):
            path = path[3:] or "/"
        return path

    def do_HEAD(self) -> None:
        self._entry = self._base_entry("health")
        self._send_bytes(200, b"", "application/json", head_only=True)

    def do_GET(self) -> None:
        owner = self.server.owner
        route = self._route
        self._entry = self._base_entry("models" if route.startswith("/models") else "health")
        if route == "/":
            self._send_json(200, {"status": "ok", "model": owner.script.model})
        elif route == "/models":
            self._send_json(200, owner._models())
        elif route.startswith("/models/"):
            self._send_json(200, owner._model_object(route.removeprefix("/models/")))
        else:
            self._not_found()

    def do_POST(self) -> None:
        route = self._route
        protocol = _POST_ROUTES.get(route, "unknown")
        self._entry = self._base_entry(protocol)
        try:
            raw = self._read_body()
        except RequestError as exc:
            self._error(400, str(exc), protocol)
            return
        if protocol == "unknown":
            self._entry["request"] = raw.decode("utf-8", "replace")
            self._not_found()
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise RequestError("the request body must be a JSON object")
        except (ValueError, RequestError) as exc:
            self._entry["request"] = raw.decode("utf-8", "replace")
            self._error(400, f"invalid JSON body: {exc}", protocol)
            return
        self._entry["request"] = body
        try:
            if protocol == "anthropic-count-tokens":
                self._send_json(200, _anthropic.count_tokens(raw))
            else:
                self._exchange(protocol, raw, body)
        except RequestError as exc:
            self._error(400, str(exc), protocol)
        except (BrokenPipeError, ConnectionResetError):
            self._entry["error"] = "client disconnected"
            self._finish()
        except Exception as exc:  # a bug here must not kill the server thread
            self._error(500, f"scripted model server error: {exc!r}", protocol)

    # -- the model exchange -------------------------------------------------------------
    def _exchange(self, protocol: str, raw: bytes, body: JSON) -> None:
        owner = self.server.owner
        module = {
            _openai_chat.NAME: _openai_chat,
            _openai_responses.NAME: _openai_responses,
            _anthropic.NAME: _anthropic,
        }[protocol]
        conversation = module.conversation(body)
        decision = decide(owner.script, conversation)
        if decision.kind == "hang":
            # Case mode "hang": never answer; the connection closes when the server stops.
            self._entry.update(mode=decision.mode, kind="hang", role=decision.role)
            self._finish()
            owner._stopping.wait()
            self.close_connection = True
            return
        if decision.kind == "server-error":
            self._entry.update(mode=decision.mode, kind="server-error", role=decision.role)
            self._error(500, f"scripted model: server error on purpose (Case {decision.role})", protocol)
            return
        stream = bool(body.get("stream"))
        options = body.get("stream_options")
        ctx = Context(
            decision=decision,
            conversation=conversation,
            model=str(body.get("model") or owner.script.model),
            usage=usage_for(raw, decision),
            ids=owner._ids,
            created=int(time.time()),
            stream=stream,
            include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
        )
        rendered: Rendered = _openai_responses.render(ctx, body) if module is _openai_responses else module.render(ctx)
        self._entry.update(
            stream=stream,
            mode=decision.mode,
            kind=decision.kind,
            step=decision.step,
            action=decision.action,
            role=decision.role,
            tool_results=conversation.tool_results,
            observations=conversation.observations,
            offered_tools=[t.name for t in conversation.tools],
        )
        if not stream:
            self._send_json(200, rendered.body)
            return
        self._entry["response"] = rendered.body
        self._entry["events"] = len(rendered.events)
        self._entry["status"] = 200
        self._streaming = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self._common_headers()
        self.end_headers()
        for event in rendered.events:
            data = event.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self._finish()  # logged before the last chunk: a client that saw the end sees the entry
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- request reading ----------------------------------------------------------------
    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raw = self._read_chunked()
        else:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError as exc:
                raise RequestError("invalid Content-Length") from exc
            if length > MAX_BODY:
                raise RequestError("request body too large")
            raw = self.rfile.read(length) if length > 0 else b""
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        try:
            if encoding == "gzip":
                raw = gzip.decompress(raw)
            elif encoding == "deflate":
                raw = zlib.decompress(raw)
            elif encoding not in ("", "identity"):
                raise RequestError(f"unsupported Content-Encoding {encoding!r}")
        except (OSError, zlib.error) as exc:
            raise RequestError(f"cannot decode {encoding} body: {exc}") from exc
        return raw

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(65537).split(b";", 1)[0].strip()
            try:
                size = int(line, 16)
            except ValueError as exc:
                raise RequestError("malformed chunked request body") from exc
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise RequestError("request body too large")
            parts.append(self.rfile.read(size))
            self.rfile.readline(65537)

    # -- responses ----------------------------------------------------------------------
    def _base_entry(self, protocol: str) -> dict[str, Any]:
        self._streaming = False  # one handler serves every request of a keep-alive connection
        return {
            "time": time.time(),
            "method": self.command,
            "path": self.path,
            "protocol": protocol,
            "headers": redact_headers(self.headers),
            "step": None,
        }

    def _common_headers(self) -> None:
        request_id = self.server.owner._ids.new("req_")
        self.send_header("x-request-id", request_id)
        self.send_header("request-id", request_id)

    def _send_json(self, status: int, obj: JSON) -> None:
        self._entry["status"] = status
        self._entry["response"] = obj
        self._send_bytes(status, json.dumps(obj, ensure_ascii=False).encode(), "application/json")

    def _send_bytes(self, status: int, data: bytes, content_type: str, *, head_only: bool = False) -> None:
        self._entry["status"] = status
        self._finish()  # logged before the reply: a client that got the reply sees the entry
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self._common_headers()
        self.end_headers()
        if not head_only:
            self.wfile.write(data)
        self.wfile.flush()

    def _error(self, status: int, message: str, protocol: str) -> None:
        self._entry["error"] = message
        if self._streaming:  # headers already sent: no second response, just drop the connection
            self.close_connection = True
            self._finish()
            return
        if protocol.startswith("anthropic"):
            kind = "invalid_request_error" if status < 500 else "api_error"
            body: JSON = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            kind = "invalid_request_error" if status < 500 else "server_error"
            body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        try:
            self._send_json(status, body)
        except (BrokenPipeError, ConnectionResetError):
            self._finish()

    def _not_found(self) -> None:
        self._error(404, f"no route for {self.command} {urlsplit(self.path).path}", "openai")

    def _finish(self) -> None:
        entry, self._entry = self._entry, {}
        if entry:
            self.server.owner._record(entry)
