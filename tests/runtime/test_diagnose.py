"""`runtime/diagnose`: the engine's answers turned into one line and an exit code."""

from __future__ import annotations

import pytest

from sidecar_gen.runtime import (
    diagnose,
    engine,
)

OCI = "OCI runtime exec failed: exec failed: unable to start container process: "


@pytest.mark.parametrize(("text", "message", "code"), [
    (OCI + 'exec: "nope": executable file not found in $PATH: unknown',
     "nope: not found in container c", 127),
    (OCI + 'exec: "/etc/passwd": permission denied: unknown',
     "/etc/passwd: permission denied in container c", 126),
    (OCI + 'chdir to cwd ("/x") set in config.json failed: no such file or directory: unknown',
     "working directory /x does not exist in container c (fix `workdir`/`paths` in bridge.yaml)",
     125),
    ("unable to find user bob: no matching entries in passwd file",
     "unable to find user bob: no matching entries in passwd file in container c"
     " (fix `user` in bridge.yaml)", 125),
    ("", "cannot execute in container c (exit code 127)", 127),
    ("something new", "cannot execute in container c: something new", 126),
])
def test_start_failures(text: str, message: str, code: int) -> None:
    error = diagnose.start_failure(text, "c", 127 if not text else 126)
    assert (error.message, error.exit_code) == (message, code)


def test_attach_failure_is_only_the_last_line() -> None:
    line = b"exec attach failed: error on attach stdin: read escape sequence\r\n"
    assert diagnose.attach_failure(line) == line.decode().strip()
    assert diagnose.attach_failure(b"output\r\n" + line) == line.decode().strip()
    assert diagnose.attach_failure(line + b"more\r\n") is None
    assert diagnose.attach_failure(line.rstrip()) is None
    assert diagnose.attach_failure(b"plain output\n") is None


@pytest.mark.parametrize(("status", "message", "expected"), [
    (403, "sidecar gate: no", "permission denied by the Docker API gate: sidecar gate: no"),
    (404, "No such container: c", "container c does not exist: start it with `docker compose"
     " up -d svc` or fix `container` in bridge.yaml (No such container: c)"),
    (409, "Container c is paused, unpause the container", "container c is paused: docker"
     " compose unpause svc"),
    (409, "Container c is not running", "container c is not running: docker compose up -d svc"),
    (500, "can only create exec sessions on running containers: container state improper",
     "container c is not running: docker compose up -d svc"),  # Podman 4.3's answer
    (500, "boom", "Docker engine error for container c: boom (HTTP 500)"),
])
def test_engine_error_messages(status: int, message: str, expected: str) -> None:
    error = diagnose.engine_error(engine.EngineError(status, message, "x"), "c", "svc")
    assert (error.message, error.exit_code) == (expected, 125)
