"""Benchmark (not a test): per-call latency the egress proxy adds on loopback (target < 2 ms).

    python bench/bench_egress.py [--rounds 12] [--calls 50] [--fresh]

The endpoint is a minimal HTTP/1.1 model stub on loopback that answers each call with a fixed
Chat Completions body (with usage) in one write, so the figure is the proxy's, not the
endpoint's (the scripted model server's two writes per reply meet delayed ACKs: ~40 ms a call,
which would drown the proxy). Each round times ``calls`` model calls
(non-streamed Chat Completions, one keep-alive connection; ``--fresh``: a new connection per
call) three ways, in an order that alternates between rounds:

- direct: a client on the host straight to the server;
- host: through the proxy's loopback TCP listener (``CTO_HARNESS_SANDBOX=none`` runs);
- isolated: a client inside ``bwrap --unshare-net`` through the in-namespace forwarder, the
  Unix socket and the proxy (every sandboxed run with an endpoint).

Each client is its own process and times its calls itself (start-up excluded). The figure
per round is median(proxied) - median(direct); the result is the median over rounds with
the min-max across rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

CLIENT = r"""
import http.client, json, sys, time
port, path, calls, fresh = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
body = json.dumps({"model": sys.argv[5], "messages": [{"role": "user", "content": "hi"}]}).encode()
headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
times = []
for i in range(calls + 3):
    t0 = time.perf_counter()
    if fresh:
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=body, headers=headers)
    reply = conn.getresponse()
    reply.read()
    assert reply.status == 200, reply.status
    if i >= 3:  # warm-up calls are not timed
        times.append((time.perf_counter() - t0) * 1000)
print(json.dumps(times))
"""


REPLY = json.dumps({"id": "chatcmpl-bench", "object": "chat.completion", "model": "bench",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "done"}}],
                    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}).encode()


class _Stub:
    """A keep-alive HTTP/1.1 server answering every request with ``REPLY`` in one write."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(REPLY)).encode() + b"\r\n\r\n" + REPLY)
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                header, _, buf = buf.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in header.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                conn.sendall(head)


def _client(argv_prefix: list[str], port: int, calls: int, fresh: bool, model: str) -> list[float]:
    out = subprocess.run([*argv_prefix, sys.executable, "-c", CLIENT, str(port), "/v1/chat/completions", str(calls),
                          "1" if fresh else "0", model], capture_output=True, text=True, check=True, timeout=600)
    times: list[float] = json.loads(out.stdout.strip().splitlines()[-1])
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--fresh", action="store_true", help="a new connection per call")
    args = parser.parse_args()

    from cto_harness.egress import FORWARDER, Budgets, EgressProxy, Endpoint, Ledger, Policy
    from cto_harness.egress._session import forwarder_python

    bwrap = shutil.which("bwrap")
    server = _Stub()
    with tempfile.TemporaryDirectory(prefix="cto-bench-egress-") as tmp:
        endpoint = Endpoint.parse(f"http://127.0.0.1:{server.port}/v1")
        policy = Policy(model="bench", model_provider="scripted", budgets=Budgets())
        proxy = EgressProxy(endpoint, policy, Ledger(Path(tmp) / "model-calls.jsonl"))
        host_port = proxy.listen_tcp()
        sock = Path(tmp) / "proxy.sock"
        proxy.listen_unix(sock)
        proxy.start()
        forwarder = Path(tmp) / "forwarder.py"
        shutil.copyfile(FORWARDER, forwarder)
        inner = endpoint.inner_port()
        isolated = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net",
                    "--unshare-pid", "--die-with-parent", "--cap-drop", "ALL", "--",
                    forwarder_python(), "-I", "-S", str(forwarder), str(inner), str(sock), "--"] if bwrap else None
        ways = {"direct": ([], server.port), "host": ([], host_port)}
        if isolated:
            ways["isolated"] = (isolated, inner)
        medians: dict[str, list[float]] = {name: [] for name in ways}
        try:
            for r in range(args.rounds):
                order = list(ways) if r % 2 == 0 else list(reversed(ways))
                for name in order:
                    prefix, port = ways[name]
                    medians[name].append(statistics.median(_client(prefix, port, args.calls, args.fresh, "bench")))
        finally:
            proxy.stop()
        expected = args.rounds * (args.calls + 3) * (len(ways) - 1)
        assert proxy.tally.calls == expected, (proxy.tally.calls, expected)  # every proxied call crossed the proxy
    print(f"egress proxy overhead per call, {args.rounds} paired rounds x {args.calls} calls "
          f"({'new connection per call' if args.fresh else 'keep-alive'}), load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  direct median per call: {statistics.median(medians['direct']):.3f} ms")
    for name in ways:
        if name == "direct":
            continue
        added = [p - d for p, d in zip(medians[name], medians["direct"], strict=True)]
        print(f"  {name:8} adds {statistics.median(added):.3f} ms (min {min(added):.3f}, max {max(added):.3f}) "
              f"over direct; proxied median {statistics.median(medians[name]):.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
