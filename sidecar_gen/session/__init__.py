"""Parallel sessions: several agents on one project, each in its own git worktree and stack.

Owns: the record and state folder of a session (`store`), its git worktree and branch
(`worktree`), its compose model and policy derived from the approved ones (`model`, pure), the
engine side (`engine`: compose up, volumes, readiness, through `host.engine` and the compose
runner), the commands `sidecar session new|up|ls|rm` (`commands`), and entering a running
stack, a session's or the project's own (`enter`: `sidecar session exec`, `sidecar claude`).

May import: the layers below (`compose`, `host`, `image`, `config`, `model`, `fsutil`,
`yamlio`, `runtime`) and the action it builds on: `trust` (a session starts only from what
`sidecar trust` approved).
"""
