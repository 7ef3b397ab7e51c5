"""The gate's container healthcheck: healthy when it answers `/_ping` with an approved policy.

    python -m sidecar_gen.gate.health tcp://127.0.0.1:2375

Exit 0 when the gate answers 200 with `X-Sidecar-Policy: sha256:...`; else 1 with one line on
stderr saying why (no answer, or no usable approved policy: run `sidecar up` on the host).
Standard library and the runtime's client only: it runs every few seconds.
"""

from __future__ import annotations

import sys

from sidecar_gen.runtime import transport
from sidecar_gen.runtime.errors import DispatchError
from sidecar_gen.runtime.httpclient import Connection, ProtocolError

POLICY_HEADER = "x-sidecar-policy"


def check(address: str, timeout: float = 5.0) -> str | None:
    """None when the gate at `address` is healthy, else the reason."""
    try:
        conn = Connection(transport.connect(transport.parse_host(address), timeout=timeout))
    except DispatchError:
        return f"nothing answers at {address}: the gate is not listening (yet)"
    try:
        conn.send_request("GET", "/_ping")
        status, _reason, headers = conn.read_head()
        conn.read_body("GET", status, headers)
    except (OSError, ProtocolError) as exc:
        return f"the gate at {address} did not answer: {exc}"
    finally:
        conn.close()
    if status != 200:
        return f"the gate at {address} answered {status} to /_ping"
    policy = headers.get(POLICY_HEADER, "")
    if not policy.startswith("sha256:"):
        return (f"the gate at {address} has no usable approved policy ({policy or 'no header'}):"
                " run `sidecar up` on the host")
    return None


def main(argv: list[str] | None = None) -> int:
    """Command line: one address argument."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m sidecar_gen.gate.health tcp://HOST:PORT\n")
        return 2
    problem = check(args[0])
    if problem:
        sys.stderr.write(f"sidecar gate unhealthy: {problem}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
