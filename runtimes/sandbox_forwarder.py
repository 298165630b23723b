"""Runs inside a strategy's sandbox (standard library only): listens on 127.0.0.1:<port> in the
sandbox's own loopback, pipes each connection to the platform's unix socket (the sandbox's only
way out), starts the strategy as its child and exits with the strategy's exit status.

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

CHUNK = 65536
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
    try:
        upstream.connect(socket_path)
    except OSError:
        client.close()
        upstream.close()
        return
    replies = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    replies.start()
    _pump(client, upstream)
    replies.join()
    client.close()
    upstream.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
        # Half-close: the other direction may still be carrying the last response.
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        # shutdown, not close: it wakes the other direction's blocked recv so both threads end.
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
