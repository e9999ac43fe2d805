"""In-namespace forwarder: 127.0.0.1:PORT -> the harness's egress Unix socket, then the provider.

Runs inside the provider's sandbox (stdlib only, ``python -I -S``), so the agent could
kill it; that only cuts the agent off, since policy is enforced on the host side of the
socket. Usage::

    _forwarder.py PORT SOCKET -- ARGV...

It binds the port before the provider exists (so the first call cannot race it), runs
``ARGV`` as its child with the unchanged environment, relays every accepted connection
to ``SOCKET``, and exits with the child's status (re-raising the child's signal).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading

CHUNK = 64 * 1024


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(CHUNK):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket, socket_path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(socket_path)
    except OSError:
        client.close()
        upstream.close()
        return
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
    back.start()
    _pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _serve(listener: socket.socket, socket_path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_relay, args=(client, socket_path), daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: _forwarder.py PORT SOCKET -- ARGV...\n")
        return 2
    port, socket_path, command = int(argv[0]), argv[1], argv[3:]
    # A long path is reached through its directory's fd (sun_path holds 108 bytes).
    dir_fd = os.open(os.path.dirname(socket_path) or ".", os.O_PATH | os.O_DIRECTORY)
    short_path = f"/proc/self/fd/{dir_fd}/{os.path.basename(socket_path)}"
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    os.set_inheritable(listener.fileno(), False)
    pid = os.fork()
    if pid == 0:
        try:
            listener.close()
            os.close(dir_fd)
            os.execvp(command[0], command)
        except OSError as exc:
            sys.stderr.write(f"cto-harness forwarder: cannot execute {command[0]}: {exc}\n")
        os._exit(127)
    threading.Thread(target=_serve, args=(listener, short_path), daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: os.kill(pid, signum))
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    return os.waitstatus_to_exitcode(status) if not os.WIFSIGNALED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
