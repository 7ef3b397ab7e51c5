"""The broker's container healthcheck: healthy when it answers its health request.

    python -m sidecar_gen.broker.health [--listening] tcp://127.0.0.1:8080

Exit 0 when the broker answers `GET /sidecar-broker/health` with 200 and holds an Anthropic
credential; else 1 with one line on stderr saying why (no answer, or no credential: run
`sidecar auth set` on the host). With `--listening` (the rendered stack's healthcheck: a stack
started without a credential still starts, and says so) an answer is enough. Standard library
and the runtime's client only: it runs every few seconds. It asks the broker only, never the
upstream.
"""

from __future__ import annotations

import json
import sys

from sidecar_gen.broker.endpoints import HEALTH_PATH
from sidecar_gen.runtime import transport
from sidecar_gen.runtime.errors import DispatchError
from sidecar_gen.runtime.httpclient import Connection, ProtocolError


def check(address: str, timeout: float = 5.0, *, require_credential: bool = True) -> str | None:
    """None when the broker at `address` is healthy, else the reason."""
    try:
        conn = Connection(transport.connect(transport.parse_host(address), timeout=timeout),
                          host="localhost")
    except DispatchError:
        return f"nothing answers at {address}: the broker is not listening (yet)"
    try:
        conn.send_request("GET", HEALTH_PATH)
        status, _reason, headers = conn.read_head()
        body = conn.read_body("GET", status, headers)
    except (OSError, ProtocolError) as exc:
        return f"the broker at {address} did not answer: {exc}"
    finally:
        conn.close()
    if status != 200:
        return f"the broker at {address} answered {status} to {HEALTH_PATH}"
    try:
        kinds = json.loads(body)["credentials"]
    except (ValueError, KeyError, TypeError):
        return f"the broker at {address} answered something else than its health"
    if require_credential and not {"api-key", "oauth-token"} & set(kinds):
        return ("the broker holds no Anthropic credential: run `sidecar auth set --api-key` "
                "(or --oauth-token) on the host, then `sidecar up`")
    return None


def main(argv: list[str] | None = None) -> int:
    """Command line: one address argument."""
    args = list(sys.argv[1:] if argv is None else argv)
    listening = args[:1] == ["--listening"]
    if listening:
        args = args[1:]
    if len(args) != 1:
        sys.stderr.write("usage: python -m sidecar_gen.broker.health [--listening] "
                         "tcp://HOST:PORT\n")
        return 2
    problem = check(args[0], require_credential=not listening)
    if problem:
        sys.stderr.write(f"sidecar broker unhealthy: {problem}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
