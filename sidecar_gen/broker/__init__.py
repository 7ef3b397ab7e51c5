"""The credential broker: the one process that holds the real secrets, outside the sandbox.

Claude Code (with `ANTHROPIC_BASE_URL` pointing here and a placeholder credential) and git
(through `url.<broker>.insteadOf`) talk plain HTTP to the broker; it forwards only the
requests of its table to its configured upstreams over verified TLS, with the real credential
in place of the placeholder, and streams the answers back with every secret masked.

Owns: request targets (`target`), the table of forwarded requests (`endpoints`), the decision
(`decide`), the credentials and placeholders (`credentials`), masking (`redact`), token usage
for the record (`usage`), upstream origins (`origin`) and connections (`upstream`),
client-side HTTP (`http`), one request's forwarding (`exchange`), connections and threads
(`server`), the audit record (`audit`), core-dump hardening (`hardening`), the wiring
(`service`), the container healthcheck (`health`).

May import: the standard library, h11, and of the package only `errors`, `fsutil`, the gate's
HTTP head checks, listener and timestamp (`gate.http`, `gate.server.bind`,
`gate.audit.timestamp`), the stack's names (`runtime.names`) and, for the healthcheck, the
runtime's small HTTP client. Never the docker SDK or typer: it runs from the image's runtime
venv (tests/broker/test_layers.py).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sidecar_gen.broker.service import Broker, BrokerOptions, run_broker

__all__ = ["Broker", "BrokerOptions", "run_broker"]


def __getattr__(name: str) -> object:
    # Lazy, like the gate's package: importing a piece must not load the server.
    if name in __all__:
        from sidecar_gen.broker import service

        return getattr(service, name)
    raise AttributeError(name)
