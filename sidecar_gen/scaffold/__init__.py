"""`sidecar init`: propose bridge.yaml and allowed-domains.txt from the real compose project.

Owns: which programs each compose service has and how init knows (`evidence`), asked of the
running containers (`probe`, through `host.engine`), read from a build-only service's
Dockerfile (`dockerfile`), or known of its image (`programs`: the catalogue of images and what a
start command runs); the proposal and its rendering (`proposal`, `templates/bridge.yaml.j2`).

May import: `compose`, `host.engine`, `runtime.contract`, `model`, `templating`, `fileplan` and
the other base modules; `render` (the domains file init writes beside bridge.yaml).
"""
