"""Engine API calls: one function per endpoint the dispatcher uses, each with its status mapping.

The middle layer, as in docker-py (`api/container.py`, `api/exec_api.py`): `transport` opens the
socket, `httpclient` speaks HTTP/1.1 on it, and the functions here know the paths, the bodies and
what each answer means. They return plain data or raise:

- `EngineError`: the engine (or the Docker API gate in front of it) answered with an error
  status; it carries the status and the daemon's own message, the caller adds what the user
  should do about it;
- `ProtocolError` (from `httpclient`): the connection broke, or the answer was not what the API
  documents (bad JSON, a missing field).

Nothing here catches more than these: anything else is a bug and travels up as one.
"""

from __future__ import annotations

from sidecar_gen.runtime import jsonlite, transport
from sidecar_gen.runtime.errors import DispatchError
from sidecar_gen.runtime.httpclient import Connection, ProtocolError, Response, quote

# typing and collections.abc cost milliseconds to import on every command: types are for mypy
# only (mypy treats any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, TypeVar

    T = TypeVar("T")

# A bound on every API answer; an exec's output stream has none (a command may run for hours).
API_TIMEOUT = 60.0

REFUSED = 403  # the gate's answer to anything outside the policy
NOT_FOUND = 404
CONFLICT = 409  # container not running or paused; exec already started


class EngineError(DispatchError):
    """An error status from the engine or the gate, with the daemon's message."""

    def __init__(self, status: int, explanation: str, action: str) -> None:
        super().__init__(f"Docker engine error while trying to {action}: {explanation}"
                         f" (HTTP {status})")
        self.status = status
        self.explanation = explanation
        self.action = action


class ExecState:
    """What `GET /exec/{id}/json` says about one exec.

    `pid_kept`: whether the engine keeps an ended process's pid, so that `pid` 0 after the end
    means the process never started. Docker does; Podman (4.3, its compat API) reports `Pid` 0
    for every ended exec, so there only the stream can say that the start failed.
    """

    __slots__ = ("exit_code", "pid", "pid_kept", "running")

    def __init__(self, running: bool, exit_code: int | None, pid: int,
                 pid_kept: bool = True) -> None:
        self.running = running
        self.exit_code = exit_code
        self.pid = pid
        self.pid_kept = pid_kept


def is_podman(response: Response) -> bool:
    """Whether the answer came from Podman's API service (its `Server: Libpod/...` header, which
    the Docker API gate passes on)."""
    return response.headers.get("server", "").lower().startswith("libpod/")


def connect(endpoint: transport.Endpoint, timeout: float | None = API_TIMEOUT) -> Connection:
    """A new HTTP connection to the engine at `endpoint` (DispatchError when unreachable)."""
    return Connection(transport.connect(endpoint, timeout=timeout))


def call_once(endpoint: transport.Endpoint, call: Callable[..., T], *args: Any) -> T:
    """`call(conn, *args)` on a connection of its own (the main one carries the stream)."""
    conn = connect(endpoint)
    try:
        return call(conn, *args)
    finally:
        conn.close()


def _call(conn: Connection, method: str, path: str, body: Any = None) -> Response:
    try:
        return conn.request(method, path, body)
    except OSError as exc:
        raise ProtocolError(
            f"lost the connection to the Docker engine: {exc.strerror or exc}") from None


def _expect(response: Response, statuses: tuple[int, ...], action: str) -> Response:
    if response.status not in statuses:
        raise EngineError(response.status, response.message(), action)
    return response


def _json(response: Response, kind: type, action: str) -> Any:
    try:
        value = response.json()
    except ValueError as exc:
        raise ProtocolError(f"the Docker engine sent invalid JSON to {action}: {exc}") from None
    if not isinstance(value, kind):
        raise ProtocolError(f"the Docker engine sent an unexpected answer to {action}")
    return value


def list_containers(conn: Connection, filters: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    """`GET /containers/json?all=1&filters=...`: every container matching `filters`."""
    action = "list containers"
    query = quote(jsonlite.dumps(dict(filters)))
    response = _expect(_call(conn, "GET", f"/containers/json?all=1&filters={query}"), (200,),
                       action)
    listing = _json(response, list, action)
    return [entry for entry in listing if isinstance(entry, dict)]


def inspect_container(conn: Connection, ref: str) -> dict[str, Any]:
    """`GET /containers/{ref}/json`: the container's configuration and state."""
    action = f"inspect container {ref}"
    response = _expect(_call(conn, "GET", f"/containers/{quote(ref)}/json"), (200,), action)
    info: dict[str, Any] = _json(response, dict, action)
    return info


def create_exec(conn: Connection, ref: str, config: Mapping[str, Any]) -> str:
    """`POST /containers/{ref}/exec`: register a process to run; returns the exec id."""
    action = f"create an exec in container {ref}"
    response = _expect(_call(conn, "POST", f"/containers/{quote(ref)}/exec", dict(config)),
                       (201,), action)
    exec_id = _json(response, dict, action).get("Id")
    if not isinstance(exec_id, str) or not exec_id.isalnum():
        raise ProtocolError(f"the Docker engine sent no exec id to {action}")
    return exec_id


def start_exec(conn: Connection, exec_id: str, tty: bool) -> None:
    """`POST /exec/{id}/start`, attached: on return `conn.sock` is the process's raw stream
    (its first bytes may already be in `conn.buf`)."""
    action = "start the command"
    try:
        response = conn.upgrade(f"/exec/{exec_id}/start", {"Detach": False, "Tty": tty})
    except OSError as exc:
        raise ProtocolError(
            f"lost the connection to the Docker engine: {exc.strerror or exc}") from None
    _expect(response, (101, 200), action)


def inspect_exec(conn: Connection, exec_id: str) -> ExecState:
    """`GET /exec/{id}/json`: whether the process runs, its exit code, its (host) pid."""
    action = "read the command's exit code"
    response = _expect(_call(conn, "GET", f"/exec/{exec_id}/json"), (200,), action)
    info = _json(response, dict, action)
    code = info.get("ExitCode")
    pid = info.get("Pid")
    return ExecState(bool(info.get("Running")), code if isinstance(code, int) else None,
                     pid if isinstance(pid, int) else 0, pid_kept=not is_podman(response))


def resize_exec(conn: Connection, exec_id: str, rows: int, columns: int) -> None:
    """`POST /exec/{id}/resize`: set the exec's terminal size."""
    _expect(_call(conn, "POST", f"/exec/{exec_id}/resize?h={rows}&w={columns}"), (200, 201),
            "resize the terminal")
