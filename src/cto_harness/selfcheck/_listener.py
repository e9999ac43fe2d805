"""A host TCP listener that counts connections, and the host's first non-loopback address.

The escape checks (health, the egress and adversarial tests) plant one of these on the host
and then prove that a sandboxed provider never reached it: ``hits`` must stay 0.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class CountingListener:
    """Listens on ``host`` (an ephemeral port) and counts every connection that arrives."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.address = [host, self.port]
        self.hits = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def host_address() -> str | None:
    """The host's first IPv4 address that is not loopback (None on a loopback-only host)."""
    import psutil

    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family == socket.AF_INET and not addr.address.startswith("127."):
                return str(addr.address)
    return None
