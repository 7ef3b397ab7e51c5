"""The dispatcher that runs inside the Claude container: stdlib-only, imported on every command.

Owns: the routed command's path, from the symlink to the remote exit code, and the facts every
layer shares (`names`: the stack's names and paths; `contract`: a route, the compose labels).
May import: the standard library only (the slow path, a changed bridge.yaml, loads
`wrappers.routes` lazily).
"""
