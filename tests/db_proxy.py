"""A database a test or a drill can stop or hang: a TCP front for a server's Unix socket.

Child processes get a DATABASE_URL pointing at the proxy. ``stop()`` closes every
connection through it and refuses new ones, which is what a client sees when the
server stops. ``hang()`` keeps every connection open and accepts new ones, but
no byte moves in either direction until ``resume()``: a network that drops
packets (a failover, a NAT table flush, a cut cable). The kernel still
acknowledges what the client sends, so TCP keepalives and ``tcp_user_timeout``
never fire: only a client-side deadline notices.
"""

from __future__ import annotations

import os
import socket
import threading
from contextlib import suppress
from typing import Any


class DatabaseProxy:
    def __init__(self, socket_folder: str, server_port: str | int = "") -> None:
        self.target = os.path.join(socket_folder, f".s.PGSQL.{server_port or 5432}")
        self.port = 0
        self.server: socket.socket | None = None
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.flowing = threading.Event()
        self.flowing.set()

    @classmethod
    def for_test_database(cls) -> DatabaseProxy:
        from django.db import connection

        db = connection.settings_dict
        return cls(db["HOST"], db["PORT"]).start()

    def url(self, name: str | None = None) -> str:
        """Database ``name`` (default: the test database) through the proxy."""
        from django.db import connection

        db = connection.settings_dict
        return self.url_for(db["USER"], name or db["NAME"])

    def url_for(self, user: str, name: str) -> str:
        # TCP, so libpq must not try TLS or GSS first.
        return (
            f"postgresql://{user}@127.0.0.1:{self.port}/{name}?sslmode=disable&gssencmode=disable"
        )

    def start(self) -> DatabaseProxy:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self.port = server.getsockname()[1]
        self.server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return self

    def stop(self) -> None:
        """The server is gone: connections drop, new ones are refused."""
        server, self.server = self.server, None
        if server is not None:
            with suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        with self.lock:
            doomed, self.open = self.open, set()
        self.flowing.set()  # let waiting threads see that it stopped
        for sock in doomed:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def hang(self) -> None:
        """Nothing goes through any more; connections stay open, new ones are accepted."""
        self.flowing.clear()

    def resume(self) -> None:
        """The network is back: what waited goes through, in order."""
        self.flowing.set()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # stopped
            with self.lock:
                self.open.add(client)
            threading.Thread(target=self._connect, args=(server, client), daemon=True).start()

    def _connect(self, server: socket.socket, client: socket.socket) -> None:
        self.flowing.wait()
        upstream = socket.socket(socket.AF_UNIX)
        try:
            upstream.connect(self.target)
        except OSError:
            client.close()
            return
        with self.lock:
            if self.server is not server:  # stopped meanwhile
                client.close()
                upstream.close()
                return
            self.open.add(upstream)
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                self.flowing.wait()
                data = source.recv(65536)
                if not data:
                    break
                self.flowing.wait()  # read as the network went: hold it until it is back
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> DatabaseProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
