"""A database outage on demand: a TCP proxy in front of the real Postgres server.

The fault tests need the server to go away and come back around a real worker or batch
run. Stopping the session's server would take every other test's database down with it
(and needs root), so the tests connect through this proxy instead: :meth:`OutageProxy.down`
cuts every open connection and refuses new ones — what clients see when the server is
stopped or restarted — and :meth:`OutageProxy.up` lets them through again, on the same
port.

>>> import socket
>>> with socket.create_server(("127.0.0.1", 0)) as server:
...     with OutageProxy("127.0.0.1", server.getsockname()[1]) as proxy:
...         client = socket.create_connection(("127.0.0.1", proxy.port))
...         peer, _ = server.accept()
...         client.sendall(b"ping"); peer.recv(4)
...         proxy.down()
...         client.recv(4)  # cut: end of file
...         refused(proxy.port)
...         proxy.up()
...         refused(proxy.port)
...         client.close(); peer.close()
b'ping'
b''
True
False
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

from sqlalchemy.engine import make_url


class OutageProxy:
    """Forwards 127.0.0.1:``port`` to ``host``:``target_port`` until told to go down."""

    def __init__(self, host: str, target_port: int, port: int = 0) -> None:
        self.target = (host, target_port)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._listen(port)
        assert self._listener is not None
        self.port: int = self._listener.getsockname()[1]

    @classmethod
    def for_url(cls, url: str) -> OutageProxy:
        parsed = make_url(url)
        return cls(parsed.host or "127.0.0.1", parsed.port or 5432)

    def url(self, url: str) -> str:
        """``url`` (a database URL of the target server) through this proxy."""
        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(
            hide_password=False)

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def down(self) -> None:
        """Refuse new connections and cut the open ones, as a stopped server does."""
        with self._lock:
            listener, self._listener = self._listener, None
            open_sockets, self._sockets = self._sockets, set()
        if listener is not None:
            with contextlib.suppress(OSError):  # wakes the accepting thread (Linux)
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def up(self) -> None:
        """Accept connections again, on the same port."""
        if self._listener is None:
            self._listen(self.port)

    def close(self) -> None:
        self.down()

    def __enter__(self) -> OutageProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def _listen(self, port: int) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True,
                         name="outage-proxy-accept").start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: the proxy is down
            try:
                server = socket.create_connection(self.target, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # went down meanwhile
                    client.close()
                    server.close()
                    return
                self._sockets.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True,
                                 name="outage-proxy-pipe").start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            source.close()  # each direction's thread closes the socket it reads
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)


def refused(port: int) -> bool:
    """Whether a connection to 127.0.0.1:``port`` is refused."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False
