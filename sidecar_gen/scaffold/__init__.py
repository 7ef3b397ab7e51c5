"""`sidecar init`: propose bridge.yaml and allowed-domains.txt from the real compose project.

Owns: which programs each compose service has and how init knows (`evidence`), asked of the
running containers (`probe`, through `host.engine`), of the images on this machine
(`imageprobe`, through a container created and never started, `host.container`), read from the
final stage of a service's Dockerfile (`dockerfile`), or known of its image (`programs`: the
catalogue of images, toolchains, image-name words, and what a start command runs); what a
service is for (`roles`: one-shot steps, root writers, output folders, started toolchains) and
who gets a program several services have (`owners`); the proposal and its rendering
(`proposal`, `templates/bridge.yaml.j2`).

May import: `compose`, `host.engine`, `host.container`, `runtime.contract`, `model`,
`templating`, `fileplan` and the other base modules; `render` (the domains file init writes
beside bridge.yaml).
"""
