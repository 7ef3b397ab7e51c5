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
from sidecar_gen.runtime import healthcheck


def check(address: str, timeout: float = 5.0, *, require_credential: bool = True) -> str | None:
    """None when the broker at `address` is healthy, else the reason."""
    answer = healthcheck.ask(address, HEALTH_PATH, "broker", timeout=timeout, host="localhost")
    if isinstance(answer, str):
        return answer
    try:
        kinds = json.loads(answer.body)["credentials"]
    except (ValueError, KeyError, TypeError):
        return f"the broker at {address} answered something else than its health"
    if require_credential and not {"api-key", "oauth-token"} & set(kinds):
        return ("the broker holds no Anthropic credential: run `sidecar auth set --api-key` "
                "(or --oauth-token) on the host, then `sidecar up`")
    return None


def main(argv: list[str] | None = None) -> int:
    """Command line: `[--listening]` and one address argument."""
    args = list(sys.argv[1:] if argv is None else argv)
    listening = args[:1] == ["--listening"]
    if listening:
        args = args[1:]
    return healthcheck.main(lambda address: check(address, require_credential=not listening),
                            "broker", "sidecar_gen.broker.health [--listening]", args)


if __name__ == "__main__":
    raise SystemExit(main())
