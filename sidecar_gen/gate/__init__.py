"""The Docker API gate: a least-privilege proxy between the dispatcher and the engine.

`run_gate(GateOptions(...))` is the one entry point (the `sidecar proxy` command calls it).
Layers: `urlpath` (canonical request targets), `policy` and `listing` (pure decisions),
`endpoints` (the table of allowed requests and their handlers), `engine` (the upstream, on the
shared Engine API client), `http` (h11 parsing and responses), `relay` (exec streams),
`server` (binding and the event loop), `service` (the wiring), `policyfile` (the approved
policy), `audit` (the decision log), `registry` (the execs this gate created), `health` (the
container healthcheck).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sidecar_gen.gate.service import Gate, GateOptions, run_gate

__all__ = ["Gate", "GateOptions", "run_gate"]

# Client connections the gate holds at once (exec streams included), unless `--max-connections`
# says otherwise: the one default of `server.Limits` and of `sidecar proxy`. Here, not in
# `server`, so the CLI reads it without loading the server.
MAX_CONNECTIONS = 256


def __getattr__(name: str) -> object:
    # Lazy: `python -m sidecar_gen.gate.health` (the healthcheck) must not load the server.
    if name in __all__:
        from sidecar_gen.gate import service

        return getattr(service, name)
    raise AttributeError(name)
