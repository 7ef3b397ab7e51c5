"""Transport: open a stream socket to the Docker engine named by DOCKER_HOST.

Uses the builtin `_socket` module: `socket` imports enum, selectors and collections (~14 ms),
which the dispatcher pays on every command.
"""

from __future__ import annotations

import _socket

from sidecar_gen.runtime.errors import DispatchError
from sidecar_gen.runtime.names import ENGINE_SOCKET

DEFAULT_HOST = f"unix://{ENGINE_SOCKET}"
Endpoint = tuple[str, str, int]  # (scheme, path or host, port)


def parse_host(value: str | None, *, any_port: bool = False) -> Endpoint:
    """Parse DOCKER_HOST (`unix:///path` or `tcp://host:port`); exit 125 for anything else.

    `any_port`: port 0 is accepted (a listening address: the system picks a free port)."""
    host = value or DEFAULT_HOST
    if host.startswith("unix://"):
        path = host[len("unix://") :]
        if not path.startswith("/"):
            raise DispatchError(f"DOCKER_HOST={host}: a unix socket needs an absolute path")
        return ("unix", path, 0)
    if host.startswith("tcp://"):
        rest = host[len("tcp://") :].rstrip("/")
        name, sep, port = rest.rpartition(":")
        if not sep:
            name, port = rest, "2375"
        name = name.strip("[]")
        lowest = 0 if any_port else 1
        if not name or not port.isdigit() or not lowest <= int(port) < 65536:
            raise DispatchError(f"DOCKER_HOST={host}: expected tcp://HOST:PORT")
        return ("tcp", name, int(port))
    raise DispatchError(
        f"DOCKER_HOST={host}: unsupported scheme; use unix:///path/docker.sock or tcp://host:port"
    )


def describe(endpoint: Endpoint) -> str:
    """The endpoint as a DOCKER_HOST-style URL, for messages."""
    scheme, where, port = endpoint
    return f"unix://{where}" if scheme == "unix" else f"tcp://{where}:{port}"


def connect(endpoint: Endpoint, timeout: float | None = None) -> _socket.socket:
    """Open a connected stream socket; raise DispatchError (125) when the engine is unreachable."""
    scheme, where, port = endpoint
    try:
        if scheme == "unix":
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(where)
            except BaseException:
                sock.close()
                raise
            return sock
        last: OSError | None = None
        # A str host makes getaddrinfo import the idna codec (re, enum, unicodedata: ~8 ms on
        # every command); host names in DOCKER_HOST are ASCII, so pass bytes.
        host = where.encode("ascii", "strict") if where.isascii() else where
        for family, kind, proto, _name, address in _socket.getaddrinfo(
            host, port, 0, _socket.SOCK_STREAM
        ):
            sock = _socket.socket(family, kind, proto)
            try:
                sock.settimeout(timeout)
                sock.connect(address)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            return sock
        raise last or OSError(f"no address for {where}")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DispatchError(
            f"cannot reach the Docker engine at {describe(endpoint)}: {reason}"
            " (is Docker running? check DOCKER_HOST)"
        ) from None
