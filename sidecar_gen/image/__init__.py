"""The Claude image's own files, made when the image is built (the Dockerfile runs `files`).

Owns: the entrypoint, the `claude` wrapper and the readiness check rendered from templates with
the image's uid/gid (`files`), and the ids the image reserves that PUID/PGID may not take
(`ids`, read from the image itself).

May import: `templating`, `fsutil`, `firewall` (its paths), `runtime.names`. Nothing
host-side: it runs in the build.
"""
