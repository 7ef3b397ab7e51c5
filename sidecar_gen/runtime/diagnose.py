"""What the engine's answers mean for the user's command: one line, and the exit code.

The engine reports a refused or failed call as an HTTP status with a message (`EngineError`),
and a process it could not start, or an attachment it broke off, as text inside the output
stream. These functions turn both into the dispatcher's one-line errors; they decide nothing
from a program's own output (the caller asks the engine first whether the program ran).
"""

from __future__ import annotations

from sidecar_gen.runtime import engine, jsonlite
from sidecar_gen.runtime.errors import ENGINE, NOT_EXECUTABLE, NOT_FOUND, DispatchError

ATTACH_FAILED = b"exec attach failed"
PODMAN_DETACHED = b"Error: detached from container"


def engine_error(error: engine.EngineError, container: str, service: str) -> DispatchError:
    """The one line that says what an engine error means and what to do about it."""
    message = error.explanation
    if error.status == engine.REFUSED:
        return DispatchError(f"permission denied by the Docker API gate: {message}")
    if error.status == engine.NOT_FOUND:
        return DispatchError(
            f"container {container} does not exist: start it with `docker compose up -d"
            f" {service}` or fix `container` in bridge.yaml ({message})")
    # Podman answers 500 "container state improper" where Docker answers 409 (stopped, paused).
    if error.status == engine.CONFLICT or "container state improper" in message.lower():
        if "paused" in message.lower():
            return DispatchError(f"container {container} is paused: docker compose unpause"
                                 f" {service}")
        return DispatchError(f"container {container} is not running: docker compose up -d"
                             f" {service}")
    return DispatchError(f"Docker engine error for container {container}: {message}"
                         f" (HTTP {error.status})")


def _quoted_after(text: str, marker: str) -> str | None:
    start = text.find(marker)
    if start < 0:
        return None
    start += len(marker)
    end = text.find('"', start)
    return text[start:end] if end > start else None


def _first_reason(text: str) -> str:
    """The engine's reason in one line: Docker writes one line; Podman writes the runtime's
    line and one about the broken attachment, or its JSON error body (an unknown user)."""
    if text.startswith("{"):
        try:
            message = jsonlite.loads(text.encode("utf-8")).get("message")
        except (ValueError, AttributeError):
            message = None
        if isinstance(message, str):
            return message.strip()
    first = text.split("\n", 1)[0].strip()
    return first.removeprefix("Error: ")


def start_failure(text: str, container: str, code: int) -> DispatchError:
    """The error for a process the engine never started; `text` is what the daemon wrote
    instead (possibly nothing), `code` the exit code it recorded."""
    text = _first_reason(text)
    low = text.lower()
    program = _quoted_after(text, 'exec: "') or "command"
    if "chdir" in low:
        workdir = _quoted_after(text, 'chdir to cwd ("') or "?"
        return DispatchError(f"working directory {workdir} does not exist in container"
                             f" {container} (fix `workdir`/`paths` in bridge.yaml)", ENGINE)
    if "executable file not found" in low or "no such file or directory" in low:
        return DispatchError(f"{program}: not found in container {container}", NOT_FOUND)
    if "unable to find user" in low or "unable to find group" in low:
        return DispatchError(f"{text} in container {container} (fix `user` in bridge.yaml)",
                             ENGINE)
    if "permission denied" in low:
        return DispatchError(f"{program}: permission denied in container {container}",
                             NOT_EXECUTABLE)
    detail = f": {text}" if text else f" (exit code {code})"
    return DispatchError(f"cannot execute in container {container}{detail}",
                         code if code in (NOT_EXECUTABLE, NOT_FOUND) else NOT_EXECUTABLE)


def attach_failure(last: bytes) -> str | None:
    """The daemon's `exec attach failed: ...` line (Podman: `Error: detached from container`)
    when it is the very last line of the stream (`last`: the held piece, or the last bytes
    written); None otherwise."""
    start = last.rfind(ATTACH_FAILED)
    if start < 0:
        start = last.rfind(PODMAN_DETACHED)
    if start < 0 or not last.endswith(b"\n") or last[start:].count(b"\n") != 1:
        return None
    return last[start:].decode("utf-8", "replace").strip()
