"""The host-side egress proxy: the only way out of a provider's network namespace.

It runs on an asyncio loop in a harness thread (no daemon, nothing outlives ``stop``)
and listens on a Unix socket that the in-namespace forwarder relays to (or, when the
operator chose no sandbox, on a loopback TCP port). It forwards to exactly one admitted
endpoint:

- ``http://``: every HTTP/1.1 exchange is parsed. The requested model is checked
  against the admitted one and the budgets before anything is forwarded (403 / 429
  with a JSON error otherwise), the response is relayed as it arrives (SSE streams
  stay streams) and read on the side for usage and stop reason, and one ledger line
  is appended per exchange.
- ``https://``: only ``CONNECT`` to exactly the admitted host:port, tunnelled without
  TLS interception; one ledger line per connection with bytes and timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cto_harness.egress._endpoint import Endpoint
from cto_harness.egress._ledger import Ledger
from cto_harness.egress._policy import Denial, Policy
from cto_harness.egress._usage import decode_body, parse_usage, request_info

MAX_HEAD = 64 * 1024
MAX_REQUEST_BODY = 32 * 1024 * 1024
MAX_CAPTURE = 16 * 1024 * 1024
"""Response bytes kept in memory for usage parsing (the relay itself is not capped)."""
CHUNK = 64 * 1024
CONNECT_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate",
                  "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length", "expect",
                  "accept-encoding"})
_UNMETERED_SUFFIXES = ("/count_tokens", "/models")
_STATUS_TEXT = {403: "Forbidden", 429: "Too Many Requests", 400: "Bad Request", 413: "Payload Too Large",
                502: "Bad Gateway", 200: "Connection Established"}


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Head:
    first: str
    headers: list[tuple[str, str]]

    def get(self, name: str, default: str = "") -> str:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    @property
    def chunked(self) -> bool:
        return "chunked" in self.get("transfer-encoding").lower()


@dataclass
class Tally:
    """Counts the run's verdict needs (guarded by the proxy's lock)."""

    exchanges: int = 0
    calls: int = 0
    denied: int = 0
    refused_models: list[str] = field(default_factory=list)
    budget: list[str] = field(default_factory=list)
    endpoint_errors: Counter[str] = field(default_factory=Counter)
    tunnels: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


async def _read_head(reader: asyncio.StreamReader) -> _Head | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise _BadRequest(400, "truncated request head") from exc
    except asyncio.LimitOverrunError as exc:
        raise _BadRequest(400, "request head too large") from exc
    lines = raw.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(400, f"malformed header line {line[:80]!r}")
        headers.append((name, value.strip()))
    return _Head(lines[0], headers)


async def _read_chunked(reader: asyncio.StreamReader, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise _BadRequest(400, "malformed chunked body") from exc
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(parts)
        total += size
        if total > limit:
            raise _BadRequest(413, "request body too large")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _read_body(reader: asyncio.StreamReader, head: _Head) -> bytes:
    if head.chunked:
        return await _read_chunked(reader, MAX_REQUEST_BODY)
    raw = head.get("content-length") or "0"
    try:
        length = int(raw)
    except ValueError as exc:
        raise _BadRequest(400, f"invalid Content-Length {raw!r}") from exc
    if length < 0:
        raise _BadRequest(400, f"invalid Content-Length {raw!r}")
    if length > MAX_REQUEST_BODY:
        raise _BadRequest(413, "request body too large")
    return await reader.readexactly(length) if length else b""


def _error_body(status: int, code: str, message: str) -> bytes:
    """One JSON error both OpenAI and Anthropic clients read (``error.message``)."""
    kind = {403: "permission_error", 429: "rate_limit_error", 502: "api_error"}.get(status, "invalid_request_error")
    return json.dumps({"type": "error", "error": {"type": kind, "code": code, "message": message, "param": None}}
                      ).encode()


def _response(status: int, body: bytes, *, close: bool = False) -> bytes:
    head = [f"HTTP/1.1 {status} {_STATUS_TEXT.get(status, 'Error')}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", "x-should-retry: false", "x-cto-harness-egress: refused",
            f"Connection: {'close' if close else 'keep-alive'}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def free_loopback_port() -> int:
    """A loopback port free right now (host mode binds it again when the proxy starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EgressProxy:
    """Forward one run's model traffic to its admitted endpoint, on the record and within policy."""

    def __init__(self, endpoint: Endpoint, policy: Policy, ledger: Ledger) -> None:
        self.endpoint = endpoint
        self.policy = policy
        self.ledger = ledger
        self.tally = Tally()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._sockets: list[socket.socket] = []
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._unix_paths: list[Path] = []

    # -- lifecycle --------------------------------------------------------------------
    def listen_unix(self, path: Path) -> None:
        """Bind a Unix socket at ``path`` (any length: bound through the directory's fd)."""
        dir_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(f"/proc/self/fd/{dir_fd}/{path.name}")
            os.chmod(path, 0o600)
            sock.listen(64)
        except BaseException:
            sock.close()
            raise
        finally:
            os.close(dir_fd)
        self._sockets.append(sock)
        self._unix_paths.append(path)

    def listen_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Bind a TCP listener (host mode: no namespace); the bound port."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
        self._sockets.append(sock)
        return int(sock.getsockname()[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop.run_forever, name="cto-harness-egress", daemon=True)
        self._thread.start()
        for sock in self._sockets:
            if sock.family == socket.AF_UNIX:
                coro = asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_HEAD)
            else:
                coro = asyncio.start_server(self._serve, sock=sock, limit=MAX_HEAD)
            self._servers.append(asyncio.run_coroutine_threadsafe(coro, self._loop).result(STOP_TIMEOUT_S))

    def stop(self) -> None:
        """Close listeners and every open connection, stop the thread, close the ledger."""
        if self._thread is not None and self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(STOP_TIMEOUT_S)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT_S)
        if not self._loop.is_running():
            self._loop.close()
        for sock in self._sockets:
            sock.close()
        for path in self._unix_paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.ledger.close()

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- connections --------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio sets this only for sockets whose proto is IPPROTO_TCP; head and body are two writes
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                try:
                    head = await _read_head(reader)
                    if head is None:
                        break
                    method = head.first.split(" ", 1)[0].upper()
                    if method == "CONNECT":
                        await self._tunnel(head, reader, writer)
                        break
                    if head.get("expect").lower() == "100-continue":
                        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    body = await _read_body(reader, head)
                except _BadRequest as exc:
                    writer.write(_response(exc.status, _error_body(exc.status, "bad_request", str(exc)), close=True))
                    await writer.drain()
                    break
                if not await self._exchange(head, body, writer, upstream):
                    break
                if "close" in head.get("connection").lower() or head.first.endswith("HTTP/1.0"):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError,
                asyncio.CancelledError):
            pass  # the client went away, or the run is over (stop cancels every connection)
        finally:
            self._tasks.discard(task)
            for _, up_writer in upstream:
                up_writer.close()
            writer.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(
            asyncio.open_connection(self.endpoint.host, self.endpoint.port, limit=MAX_HEAD), CONNECT_TIMEOUT_S)

    async def _exchange(self, head: _Head, body: bytes, writer: asyncio.StreamWriter,
                        upstream: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> bool:
        """One request/response; False when the downstream connection must close."""
        t0 = time.monotonic()
        parts = head.first.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            writer.write(_response(400, _error_body(400, "bad_request", "malformed request line"), close=True))
            return False
        method, target = parts[0].upper(), parts[1]
        if self.endpoint.tunnelled:
            reason = f"{self.endpoint.url} is https: it is reached only by CONNECT (HTTPS_PROXY)"
            payload = _error_body(403, "endpoint_not_admitted", f"cto-harness egress policy: {reason}")
            writer.write(_response(403, payload, close=True))
            with self._lock:
                self.tally.denied += 1
            self.ledger.append({"time": _now(), "kind": "other", "method": method, "allowed": False,
                                "denial": "endpoint-not-admitted", "reason": reason, "status": 403})
            return False
        split = urllib.parse.urlsplit(target)
        path = split.path or "/"
        forward_target = path + (f"?{split.query}" if split.query else "")
        entry: dict[str, Any] = {"time": _now(), "kind": "model", "method": method, "path": path, "model": None}
        info = request_info(decode_body(body, head.get("content-encoding")))
        model = info.model
        entry["model"], entry["stream"] = model, info.stream
        metered = not path.rstrip("/").endswith(_UNMETERED_SUFFIXES)
        denial: tuple[Denial, str] | None = None
        if not body and method in ("GET", "HEAD", "OPTIONS"):
            entry["kind"], metered = "other", False
        elif not info.parsed:
            denial = ("model-not-admitted", "the request body is not readable JSON, so its model cannot be checked")
        else:
            denial = self.policy.check(model, metered=metered)
        entry["request_bytes"] = len(body)
        if denial is not None:
            cls, reason = denial
            status = 403 if cls == "model-not-admitted" else 429
            payload = _error_body(status, cls.replace("-", "_"), f"cto-harness egress policy: {reason}")
            writer.write(_response(status, payload))
            await writer.drain()
            with self._lock:
                self.tally.exchanges += 1
                self.tally.denied += 1
                if cls == "model-not-admitted":
                    self.tally.refused_models.append(model if model is not None else "(none)")
                else:
                    self.tally.budget.append(reason)
            entry.update(allowed=False, denial=cls, reason=reason, status=status,
                         latency_ms=round((time.monotonic() - t0) * 1000, 3), response_bytes=len(payload))
            self._append(entry, body, payload)
            return True
        entry["allowed"] = True
        request = self._request_bytes(method, forward_target, head, body)
        for attempt in range(2):
            reused = bool(upstream)
            try:
                if not upstream:
                    upstream.append(await self._connect())
                up_reader, up_writer = upstream[0]
                up_writer.write(request)
                await up_writer.drain()
                response = await _read_response_head(up_reader)
                break
            except (OSError, TimeoutError, asyncio.IncompleteReadError, _BadRequest) as exc:
                if upstream:
                    upstream.pop()[1].close()
                if reused and attempt == 0 and not isinstance(exc, _BadRequest):
                    continue  # the endpoint closed an idle kept-alive connection: one fresh try
                return await self._endpoint_failed(entry, exc, writer, body, metered, t0)
        ttfb = time.monotonic() - t0
        status = _status(response)
        close_after = "close" in response.get("connection").lower() or response.first.startswith("HTTP/1.0")
        writer.write((response.first + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in response.headers)
                      + "\r\n").encode("latin-1"))
        capture = _Sink()
        up_reader = upstream[0][0]
        try:
            if method == "HEAD" or status in (204, 304):
                pass
            elif response.chunked:
                await _relay_chunked(up_reader, writer, capture)
            elif response.get("content-length"):
                await _relay_exact(up_reader, writer, int(response.get("content-length")), capture)
            else:
                close_after = True
                await _relay_to_eof(up_reader, writer, capture)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            entry["error"] = f"relay cut: {type(exc).__name__}"
            close_after = True
        latency = time.monotonic() - t0
        usage = parse_usage(decode_body(bytes(capture.data), response.get("content-encoding")) or b"",
                            response.get("content-type"))
        cost = self.policy.record(usage.input_tokens, usage.output_tokens) if metered else None
        with self._lock:
            self.tally.exchanges += 1
            if metered:
                self.tally.calls += 1
            if status >= 500:
                self.tally.endpoint_errors[f"HTTP {status}"] += 1
        entry.update(status=status, latency_ms=round(latency * 1000, 3), ttfb_ms=round(ttfb * 1000, 3),
                     response_bytes=capture.total, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                     cost_usd=cost, stop_reason=usage.stop_reason)
        self._append(entry, body, bytes(capture.data))
        if close_after and upstream:
            upstream.pop()[1].close()
        return not close_after

    async def _endpoint_failed(self, entry: dict[str, Any], exc: BaseException, writer: asyncio.StreamWriter,
                               body: bytes, metered: bool, t0: float) -> bool:
        what = "refused" if isinstance(exc, ConnectionRefusedError) else f"failed ({type(exc).__name__})"
        message = f"cto-harness egress: the admitted endpoint {self.endpoint.url} {what}"
        payload = _error_body(502, "endpoint_unreachable", message)
        writer.write(_response(502, payload))
        await writer.drain()
        if metered:
            self.policy.release()
        with self._lock:
            self.tally.exchanges += 1
            self.tally.endpoint_errors[f"connection {what}"] += 1
        entry.update(status=502, error=f"endpoint connection {what}",
                     latency_ms=round((time.monotonic() - t0) * 1000, 3),
                     response_bytes=len(payload))
        self._append(entry, body, payload)
        return True

    def _request_bytes(self, method: str, target: str, head: _Head, body: bytes) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.endpoint.authority}"]
        lines += [f"{k}: {v}" for k, v in head.headers if k.lower() not in _HOP]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        lines += ["Accept-Encoding: identity", "Connection: keep-alive"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def _append(self, entry: dict[str, Any], request: bytes, response: bytes) -> None:
        if self.ledger.keep_bodies:
            entry["request_body"] = self.ledger.body(request)
            entry["response_body"] = self.ledger.body(response)
        self.ledger.append(entry)

    # -- https ----------------------------------------------------------------------------
    async def _tunnel(self, head: _Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        t0 = time.monotonic()
        target = head.first.split(" ")[1] if len(head.first.split(" ")) == 3 else ""
        host, _, port = target.rpartition(":")
        entry: dict[str, Any] = {"time": _now(), "kind": "tunnel", "method": "CONNECT", "target": target}
        wanted = self.endpoint.tunnelled and host.strip("[]").lower() == self.endpoint.host \
            and port == str(self.endpoint.port)
        if not wanted:
            reason = f"CONNECT {target}: the only admitted endpoint is {self.endpoint.url}"
            payload = _error_body(403, "endpoint_not_admitted", f"cto-harness egress policy: {reason}")
            writer.write(_response(403, payload, close=True))
            await writer.drain()
            with self._lock:
                self.tally.denied += 1
            entry.update(allowed=False, denial="endpoint-not-admitted", reason=reason, status=403)
            self.ledger.append(entry)
            return
        try:
            up_reader, up_writer = await self._connect()
        except (OSError, TimeoutError) as exc:
            what = "refused" if isinstance(exc, ConnectionRefusedError) else f"failed ({type(exc).__name__})"
            writer.write(_response(502, _error_body(502, "endpoint_unreachable",
                                                    f"the admitted endpoint {self.endpoint.url} {what}"), close=True))
            await writer.drain()
            with self._lock:
                self.tally.endpoint_errors[f"connection {what}"] += 1
            entry.update(allowed=True, status=502, error=f"endpoint connection {what}")
            self.ledger.append(entry)
            return
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        counts = [0, 0]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, index: int) -> None:
            try:
                while data := await src.read(CHUNK):
                    counts[index] += len(data)
                    dst.write(data)
                    await dst.drain()
                if dst.can_write_eof():
                    dst.write_eof()
            except (ConnectionError, OSError):
                pass

        try:
            await asyncio.gather(pipe(reader, up_writer, 0), pipe(up_reader, writer, 1))
        finally:
            up_writer.close()
            with self._lock:
                self.tally.tunnels += 1
                self.tally.bytes_up += counts[0]
                self.tally.bytes_down += counts[1]
            entry.update(allowed=True, status=200, request_bytes=counts[0], response_bytes=counts[1],
                         duration_ms=round((time.monotonic() - t0) * 1000, 3))
            self.ledger.append(entry)


def _status(head: _Head) -> int:
    parts = head.first.split(" ", 2)
    try:
        return int(parts[1])
    except (IndexError, ValueError) as exc:
        raise _BadRequest(502, f"malformed status line {head.first[:80]!r}") from exc


async def _read_response_head(reader: asyncio.StreamReader) -> _Head:
    while True:
        head = await _read_head(reader)
        if head is None:
            raise asyncio.IncompleteReadError(b"", None)
        if not 100 <= _status(head) < 200 or _status(head) == 101:
            return head


async def _relay_exact(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, length: int,
                       capture: _Sink) -> None:
    remaining = length
    while remaining > 0:
        data = await reader.read(min(CHUNK, remaining))
        if not data:
            raise asyncio.IncompleteReadError(b"", remaining)
        remaining -= len(data)
        capture.keep(data)
        writer.write(data)
        await writer.drain()


async def _relay_to_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, capture: _Sink) -> None:
    while data := await reader.read(CHUNK):
        capture.keep(data)
        writer.write(data)
        await writer.drain()


async def _relay_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, capture: _Sink) -> None:
    while True:
        line = await reader.readuntil(b"\r\n")
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            writer.write(line)
            while True:
                trailer = await reader.readuntil(b"\r\n")
                writer.write(trailer)
                if trailer == b"\r\n":
                    return
        data = await reader.readexactly(size + 2)
        capture.keep(data[:-2])
        writer.write(line + data)
        await writer.drain()


class _Sink:
    """Counts every relayed body byte; keeps the first ``MAX_CAPTURE`` for parsing."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.total = 0

    def keep(self, data: bytes) -> None:
        self.total += len(data)
        if len(self.data) < MAX_CAPTURE:
            self.data += data[: MAX_CAPTURE - len(self.data)]
