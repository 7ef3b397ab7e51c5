"""One HTTP health request over the runtime's client, shared by the stack's container healthchecks.

The gate's and the broker's healthchecks ask their own service one question every few seconds;
they differ only in the path and in how they judge the answer. Standard library and the
runtime's client only, so a healthcheck costs one small interpreter start.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sidecar_gen.runtime import transport
from sidecar_gen.runtime.errors import DispatchError
from sidecar_gen.runtime.httpclient import Connection, ProtocolError


@dataclass(frozen=True)
class HealthReply:
    """A service's answer to its health request."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def ask(address: str, path: str, service: str, *, timeout: float = 5.0,
        host: str = "docker") -> HealthReply | str:
    """GET `path` from the `service` at `address`: its answer, or the reason there is none."""
    try:
        sock = transport.connect(transport.parse_host(address), timeout=timeout)
    except DispatchError:
        return f"nothing answers at {address}: the {service} is not listening (yet)"
    conn = Connection(sock, host=host)
    try:
        conn.send_request("GET", path)
        status, _reason, headers = conn.read_head()
        body = conn.read_body("GET", status, headers)
    except (OSError, ProtocolError) as exc:
        return f"the {service} at {address} did not answer: {exc}"
    finally:
        conn.close()
    if status != 200:
        return f"the {service} at {address} answered {status} to {path}"
    return HealthReply(status, headers, body)


def main(check: Callable[[str], str | None], service: str, module: str,
         argv: list[str] | None = None) -> int:
    """A healthcheck's command line: one address argument; exit 0 healthy, 1 not, 2 misuse."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write(f"usage: python -m {module} tcp://HOST:PORT\n")
        return 2
    problem = check(args[0])
    if problem:
        sys.stderr.write(f"sidecar {service} unhealthy: {problem}\n")
        return 1
    return 0
