"""The Docker engine from the host, through the docker SDK (`sidecar up`, `trust`, `doctor`).

The SDK is the host side's tool (it costs ~200 ms to import, so the dispatcher and the gate
never use it: they speak the Engine API through `runtime/`).
"""

from __future__ import annotations

from typing import Any

from sidecar_gen.errors import ExitCode, SidecarError


class HostEngineError(SidecarError):
    """The Docker engine cannot be reached from the host."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=ExitCode.FINDINGS)


def connect(timeout: int = 120) -> Any:
    """A docker SDK client for the engine `DOCKER_HOST` (or the default socket) names."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:  # the SDK raises several unrelated types for "not reachable"
        raise HostEngineError(f"cannot reach the Docker engine ({exc}): is it running, and is "
                          "DOCKER_HOST right?") from None
    return client
