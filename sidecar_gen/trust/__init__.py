"""The trust boundary on the host: what the user approved, and starting only that.

- `record`: the approval record in `$XDG_STATE_HOME/claude-sidecar/` (outside every container).
- `inputs`: the files compose would load in a project folder (for diffs that name files).
- `gitfiles`: the git files that decide what git runs on the host (their digests, what to
  mount read-only).
- `snapshot`: the project as it is now: compose's effective model, those files, the policy.
- `secrets`: which values are kept in clear and which as keyed digests (by the variable's name).
- `compare`: approved vs now, as data and as diffs.
- `policyvolume`: the `sidecar-policy` volume the gate and claude read (read-only).
- `startmodel`: what `sidecar up` adds to the verified model before starting it.
- `resolved`: the last verified resolution, reused by the daily `up` while the keyed digest of
  everything it depends on is unchanged.
- `actions`: `sidecar up` and `sidecar trust`.
- `firstrun`: `sidecar up` in a folder with no `.sidecar/` (init, render, the plan, undo).

Owns: the approval and what `sidecar up` starts. May import: `compose`, `host`, `config`,
`model`, `session.model` (which services commands route to), `render` (what it would change,
and the first run's render), `scaffold.proposal` (the first run's init), `fileplan`, `fsutil`,
`yamlio`, `runtime`.
"""
