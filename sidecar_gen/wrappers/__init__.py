"""The routed commands in the Claude container: the route cache and the wrappers that use it.

Owns: compiling a validated bridge.yaml into the route cache the dispatcher reads on every
command (`routes`; the dispatcher's slow path calls it when bridge.yaml changed), and `sidecar
install-wrappers` (`install`: the cache, the launcher, one symlink per command).

May import: `config`, `model`, `errors`, `fsutil`, `yamlio`, `runtime`.
"""
