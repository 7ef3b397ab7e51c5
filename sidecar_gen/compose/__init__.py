"""The user's compose project, read the way `docker compose` reads it.

Owns: what compose reads before any service (`env`: the environment, `.env`, `${...}`
interpolation, the file set), our own reader for when the compose CLI is missing or fails
(`reader`, with the canonical form and merging of a service in `services`), the one runner of
the compose CLI (`cli`: `docker compose config`, `up`, `pull`, through `host.process`), and the
model init, validate and render use (`project`).

May import: `runtime` (contract, names), the base modules (`errors`, `fsutil`, `yamlio`) and
`host.process`. Nothing here knows bridge.yaml.
"""
