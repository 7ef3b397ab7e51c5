"""Host-side plumbing: how sidecar reaches programs and the engine on the user's machine.

Owns: the one runner of host programs (`process`: a process group per child, a time limit per
kind of call, stopped on timeout and on SIGTERM/SIGINT/SIGHUP), git through it with nothing the
repository configures run (`git`), the one way to reach the Docker engine (`engine`: the
docker SDK, connected by one documented precedence of DOCKER_HOST, CONTAINER_HOST and the
Docker CLI's context), and reading a container from the outside through it (`container`: the
engine's stat of a path, where an exec would find a program, deadlines).

May import: `errors`, `fsutil`, the standard library and the docker SDK. Never imported by the
dispatcher or the gate (they speak the Engine API through `runtime/`).
"""
