"""A requests adapter that connects only to addresses `urls.address_problem` accepts.

The config check (`urls.url_problem`) sees only the URL: `https://hooks.example.net/` whose name
resolves to 169.254.169.254 passes it. So each sink connection resolves the name itself, refuses
it if any address is link-local, metadata or unspecified (or, for plain http, not loopback), and
connects to the addresses it checked: no second lookup that could answer differently (DNS
rebinding). TLS still verifies the certificate against the name, not the address.
"""

from __future__ import annotations

import socket

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection

from monitor.urls import address_problem


class _Vetted:
    def _new_conn(self) -> socket.socket:
        host = self._dns_host.strip("[]")
        try:
            found = socket.getaddrinfo(host, self.port, connection.allowed_gai_family(), socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e
        plain = not isinstance(self, HTTPSConnection)
        for *_, address in found:
            problem = address_problem(address[0], plain_http=plain)
            if problem:
                raise NewConnectionError(self, f"refused: the host name resolves to {problem}")
        error: Exception | None = None
        for *_, address in found:
            try:
                return connection.create_connection(address[:2], self.timeout, source_address=self.source_address,
                                                    socket_options=self.socket_options)
            except socket.timeout:
                error = ConnectTimeoutError(self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})")
            except OSError as e:
                error = NewConnectionError(self, f"Failed to establish a new connection: {e}")
        raise error or NewConnectionError(self, "the host name resolves to no address")


class _HTTPConnection(_Vetted, HTTPConnection):
    pass


class _HTTPSConnection(_Vetted, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class VettedAdapter(HTTPAdapter):
    """`session.mount("https://", VettedAdapter(max_retries=0))`."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
