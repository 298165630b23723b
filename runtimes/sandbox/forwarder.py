"""Runs inside a strategy's sandbox (standard library only): listens on 127.0.0.1:<port> in the
sandbox's own loopback, hands each accepted connection over the platform's unix socket (the
sandbox's only way out), starts the strategy as its child and exits with the strategy's exit
status.

Handing over is passing the connection's descriptor (SCM_RIGHTS): the relay then reads and
writes the strategy's socket itself, so no process in between copies every frame (two thread
wake-ups per message each way, a tenth of a lock-step bar).

Usage: python -I -S forwarder.py PORT SOCKET_PATH -- COMMAND [ARGS...]
This is not a security boundary (the strategy runs as the same uid and may bypass it); the
relay on the host side of the socket is. It exists because the SDK speaks TCP, not unix sockets.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading

HANDOVER = b"F"  # the one byte that carries a passed connection (the relay's HANDOVER)
# A strategy killed by signal N is reported as 128 + N, like a shell and like bwrap's pid 1,
# so the runner reads the same number with or without this process in between.
SIGNAL_EXIT_BASE = 128
SETUP_FAILED = 125


def main(argv: list[str]) -> int:
    try:
        port, socket_path, command = _parse(argv)
        listener = _listen(port)
    except (ValueError, OSError) as error:
        print(f"parity forwarder: cannot start: {error}", file=sys.stderr, flush=True)
        return SETUP_FAILED
    threading.Thread(target=_accept_loop, args=(listener, socket_path), daemon=True).start()
    # Listening before the strategy starts: its first request can never race the forwarder.
    returncode = subprocess.Popen(command, stdin=subprocess.DEVNULL).wait()
    return SIGNAL_EXIT_BASE - returncode if returncode < 0 else returncode


def _parse(argv: list[str]) -> tuple[int, str, list[str]]:
    if len(argv) < 4 or argv[2] != "--":
        raise ValueError("usage: forwarder.py PORT SOCKET_PATH -- COMMAND [ARGS...]")
    return int(argv[0]), argv[1], argv[3:]


def _listen(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    return listener


def _accept_loop(listener: socket.socket, socket_path: str) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_connect, args=(client, socket_path), daemon=True).start()


def _connect(client: socket.socket, socket_path: str) -> None:
    # Small request/response round trips dominate: never let Nagle hold a packet back.
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(OSError):
        upstream.connect(socket_path)
        socket.send_fds(upstream, [HANDOVER], [client.fileno()])
    # The relay holds its own copy of the descriptor now (or the connection just ends).
    client.close()
    upstream.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
