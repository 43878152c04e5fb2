"""A TCP proxy on 127.0.0.1 in front of PostgreSQL that can stop forwarding without closing.

While `blackhole` is on, every connection stays open but no byte moves in either
direction, and new connections are accepted and then left silent: what a network
that drops packets (a failover, a NAT table flush, a cut cable) looks like to a
client. The kernel still acknowledges what the client sends, so TCP keepalives
and ``tcp_user_timeout`` never fire: only a client-side deadline notices.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


class BlackholeProxy:
    def __init__(self, unix_socket: str) -> None:
        self.unix_socket = unix_socket
        self.forwarding = threading.Event()
        self.forwarding.set()
        self.closing = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)

    def url(self, user: str, database: str) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> BlackholeProxy:
        self.thread.start()
        return self

    def blackhole(self, on: bool) -> None:
        if on:
            self.forwarding.clear()
        else:
            self.forwarding.set()

    def stop(self) -> None:
        self.closing.set()
        self.forwarding.set()
        with suppress(OSError):
            self.listener.close()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self.forwarding.wait()
        try:
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(self.unix_socket)
        except OSError:
            client.close()
            return
        for source, target in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while not self.closing.is_set():
                self.forwarding.wait()
                data = source.recv(65536)
                if not data:
                    break
                self.forwarding.wait()  # read during a switch: hold it until forwarding
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with suppress(OSError):
                    sock.close()
