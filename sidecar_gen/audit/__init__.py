"""One audit stream: the gate's decisions, the egress record and the user's approvals.

Modules: `envelope` (the versioned line every source is turned into, checked and escaped;
`schemas/audit-event.schema.json`), `sources` (reading each source through the Engine API: the
gate's decision log from its container log, the egress record from the claude container's
`/run/sidecar/egress`, a broker record file), `store` (the host-side log of `sidecar net`
decisions in the user's state folder, rotated by size), `stream` (merge, filter, follow, text).

Owns: `sidecar net log|pending` and `sidecar audit`. May import: `firewall.events`, `trust`,
`host`, `runtime`, `errors`, `fsutil`.
"""
