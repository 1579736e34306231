"""A server that cannot be reached, and then can: a port bound on loopback but not listening (a
connection to it is refused, as to a database not up yet), which `open()` turns into a relay to the
real server, byte for byte in both directions."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpRelay:
    """`port` refuses connections until `open()`; from then on each connection is relayed to
    `target`. `close()` ends the relay and every connection through it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))  # bound, so the port stays ours; not listening yet
        self.port: int = self._listener.getsockname()[1]
        self._accepting: threading.Thread | None = None
        self._connections: list[socket.socket] = []
        self._pumps: list[threading.Thread] = []

    def open(self) -> None:
        self._listener.listen()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        if self._accepting is not None:
            self._accepting.join(timeout=10)
        self._listener.close()
        for conn in self._connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes the pumping threads
            conn.close()
        for pump in self._pumps:
            pump.join(timeout=10)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # close() shut the listener
            try:
                server = socket.create_connection(self._target, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            self._connections += [client, server]
            for source, sink in ((client, server), (server, client)):
                pump = threading.Thread(target=self._pump, args=(source, sink), daemon=True)
                self._pumps.append(pump)
                pump.start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the other side, or close(), ended the connection
