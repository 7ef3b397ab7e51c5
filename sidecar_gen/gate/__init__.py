"""The Docker API gate: a least-privilege proxy between the dispatcher and the engine.

`service.run_gate(GateOptions(...))` is the one entry point (the `sidecar proxy` command
calls it).
Layers: `urlpath` (canonical request targets), `policy` and `listing` (pure decisions),
`gatekeeper` (the state they are taken with: engine, policy in force, scope, grants),
`endpoints` (the table of allowed requests and their handlers), `engine` (the upstream, on the
shared Engine API client), `http` (h11 parsing and responses), `relay` (exec streams),
`server` (binding and the event loop), `serving` (the worker threads), `service` (the wiring),
`policyfile` (the approved policy), `audit` (the decision log), `registry` (the execs this gate
created), `health` (the container healthcheck).

Owns: every decision about an Engine API request from the Claude container, and its log.
May import: `errors`, `model`, `config`, and from `runtime/` only its public pieces
(`contract`, `names`, `killer`, `userspec`, `transport`, `httpclient`, `jsonlite`, `errors`);
the decision modules do no I/O.
"""

from __future__ import annotations

# The connection cap's default: the CLI's `--max-connections` and `server.Limits` both take it
# from here (this module imports nothing, so the CLI stays light).
MAX_CONNECTIONS = 256
