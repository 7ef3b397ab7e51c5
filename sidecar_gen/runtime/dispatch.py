"""The dispatcher: run a routed command in its container, as if it were installed locally.

Invoked through a symlink whose name is the command (`php -> .sidecar-dispatch`), or through
`sidecar exec NAME`. The hot path imports only builtin or tiny stdlib modules; bridge.yaml is
read from the route cache (see `cache`) and only re-validated when it changed.

Exit codes: the remote one exactly; 124 timeout; 125 engine/gate/config error; 126 not
executable; 127 not found; 128+N when the dispatcher got signal N (the remote command is then
terminated through the cleanup exec of `killer`).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # builtin; `signal` imports enum
import _socket
import _thread
import os
import sys
import time

from sidecar_gen.runtime import cache, jsonlite, killer, transport
from sidecar_gen.runtime.contract import (
    PROJECT_LABEL,
    SERVICE_LABEL,
    Route,
    RouteTable,
    pick_member,
    service_members,
)
from sidecar_gen.runtime.errors import ENGINE, NOT_EXECUTABLE, NOT_FOUND, TIMEOUT, DispatchError
from sidecar_gen.runtime.frames import STDERR, STDOUT, SYSTEM_ERROR, Demuxer
from sidecar_gen.runtime.httpclient import Connection, quote
from sidecar_gen.runtime.pathmap import map_args, pick_workdir
from sidecar_gen.runtime.userspec import expand_user

# typing and collections.abc cost milliseconds to import on every command: types are for mypy only
# (mypy treats any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

LAUNCHER_NAME = ".sidecar-dispatch"
RECV_SIZE = 256 * 1024
STDIN_CHUNK = 64 * 1024
# Daemon errors about starting the process arrive as text inside the stream (dockerd 20.10:
# as the first stdout frame) and the exit code 126; these prefixes mark them.
_DAEMON_ERROR_PREFIXES = (b"OCI runtime exec failed", b"OCI runtime", b"unable to find user",
                          b"unable to find group", b"exec failed:")
_HELD_LIMIT = 4096
API_TIMEOUT = 60.0
_HANDLED_SIGNALS = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)

# Extra sys.path entries (the environment's site-packages) for the slow path; the launcher
# written by `install-wrappers` sets them.
SLOW_PATH: list[str] = []


class _Stop(BaseException):
    """Raised from signal handlers (BaseException, so no `except Exception` swallows it)."""

    def __init__(self, signum: int, timed_out: bool = False) -> None:
        super().__init__(signum)
        self.signum = signum
        self.timed_out = timed_out


def _say(line: str) -> None:
    try:  # noqa: SIM105 - contextlib is not imported on the hot path
        os.write(2, (line.replace("\n", " ") + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    """Entry point of the launcher: the program name is the routed command."""
    args = sys.argv if argv is None else argv
    prog = args[0] if args else "sidecar-dispatch"
    wrapper_dir = os.path.dirname(os.path.abspath(prog))
    try:
        return run(os.path.basename(prog), list(args[1:]), wrapper_dir=wrapper_dir)
    except KeyboardInterrupt:
        # Ctrl-C before the exec started (e.g. while bridge.yaml was being validated).
        return 130
    except Exception as exc:
        # A bug: still one line, never a traceback, unless asked for.
        if os.environ.get("SIDECAR_DEBUG"):
            raise
        _say(f"sidecar: internal error: {type(exc).__name__}: {exc}"
             " (set SIDECAR_DEBUG=1 for the traceback and please report it)")
        return ENGINE


def run(
    name: str,
    args: list[str],
    *,
    wrapper_dir: str | None = None,
    config: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run command `name` with `args` as bridge.yaml routes it; return the exit code.

    `wrapper_dir` is the directory of the symlinks (None for `sidecar exec`: then a command
    that is not routed is an error instead of running natively).
    """
    env = os.environ if environ is None else environ
    try:
        return _Dispatch(name, args, wrapper_dir, config, env).run()
    except DispatchError as exc:
        _say(f"sidecar: {name}: {exc.message}")
        return exc.exit_code
    except _Stop as stop:  # a second signal while the first was being handled
        return TIMEOUT if stop.timed_out else 128 + stop.signum


def _getcwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return "/"


def load_routes(config: str | None, environ: Mapping[str, str], cwd: str) -> RouteTable:
    """The routes of the active bridge.yaml: from the cache when fresh, else recompiled."""
    path = os.path.join(cwd, config) if config else cache.find_config(environ, cwd)
    path = os.path.abspath(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise DispatchError(
            f"cannot read bridge.yaml at {path}: {exc.strerror}"
            " (set BRIDGE_CONFIG or SIDECAR_CONFIG_DIR, or run from the project directory)"
        ) from None
    routes = cache.load(path, cache.stamp_of(st), environ)
    if routes is not None:
        return routes
    return _recompile(path, environ)


def _recompile(path: str, environ: Mapping[str, str]) -> RouteTable:
    # Slow path: bridge.yaml changed (or no cache yet). Validation needs the full package and
    # its dependencies, which the launcher located for us.
    for entry in SLOW_PATH:
        if entry not in sys.path:
            sys.path.append(entry)
    try:
        from pathlib import Path

        from sidecar_gen.errors import SidecarError
        from sidecar_gen.routes import refresh_routes
    except ImportError as exc:
        raise DispatchError(
            f"cannot validate {path}: {exc} (run `sidecar install-wrappers` again)"
        ) from None
    try:
        routes, _written = refresh_routes(Path(path), environ)
    except SidecarError as exc:
        raise DispatchError(f"invalid bridge.yaml: {exc.message}") from None
    return routes


def _find_native(name: str, wrapper_dir: str, environ: Mapping[str, str]) -> str | None:
    own = os.path.realpath(wrapper_dir)
    launcher = os.path.realpath(os.path.join(wrapper_dir, LAUNCHER_NAME))
    for entry in environ.get("PATH", os.defpath).split(":"):
        directory = entry or "."
        if os.path.realpath(directory) == own:
            continue
        candidate = os.path.join(directory, name)
        if (
            os.access(candidate, os.X_OK)
            and not os.path.isdir(candidate)
            and os.path.realpath(candidate) != launcher
        ):
            return candidate
    return None


def _exec_native(path: str, name: str, args: list[str]) -> int:
    # Python ignores SIGPIPE (and SIGXFSZ); an exec'd program must get the defaults back.
    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(sig, _signal.SIG_DFL)
    try:
        os.execv(path, [name, *args])  # noqa: S606 - the user's own command
    except OSError as exc:
        raise DispatchError(f"cannot run {path}: {exc.strerror}", NOT_EXECUTABLE) from None
    return NOT_EXECUTABLE  # pragma: no cover - execv does not return


def _quoted_after(text: str, marker: str) -> str | None:
    start = text.find(marker)
    if start < 0:
        return None
    start += len(marker)
    end = text.find('"', start)
    return text[start:end] if end > start else None


def _daemon_error(text: str, container: str) -> tuple[str, int]:
    """Turn the daemon's start error into one line and an exit code."""
    low = text.lower()
    program = _quoted_after(text, 'exec: "')
    if "chdir" in low:
        workdir = _quoted_after(text, 'chdir to cwd ("')
        return (
            f"working directory {workdir or '?'} does not exist in container {container}"
            " (fix `workdir`/`paths` in bridge.yaml)",
            ENGINE,
        )
    if "executable file not found" in low or "no such file or directory" in low:
        return f"{program or 'command'}: not found in container {container}", NOT_FOUND
    if "unable to find user" in low or "unable to find group" in low:
        return f"{text} in container {container} (fix `user` in bridge.yaml)", ENGINE
    if "permission denied" in low:
        return f"{program or 'command'}: permission denied in container {container}", \
            NOT_EXECUTABLE
    return f"cannot execute in container {container}: {text}", NOT_EXECUTABLE


class _Dispatch:
    """One invocation; fields keep what the audit log and the cleanup need."""

    def __init__(
        self,
        name: str,
        args: list[str],
        wrapper_dir: str | None,
        config: str | None,
        environ: Mapping[str, str],
    ) -> None:
        self.name = name
        self.args = args
        self.wrapper_dir = wrapper_dir
        self.config = config
        self.environ = environ
        self.started = time.monotonic()
        self.token = os.urandom(killer.TOKEN_HEX_DIGITS // 2).hex()
        self.endpoint: transport.Endpoint = ("unix", "", 0)
        self.container = ""
        self.container_ref = ""
        self.service = ""
        self.user: str | None = None
        self.workdir = ""
        self.remote_argv: list[str] = []
        self.exec_id: str | None = None
        self.running = False
        self.old_handlers: dict[int, Any] = {}
        self.tty_restore: Any = None

    # -- routing -----------------------------------------------------------------------------

    def run(self) -> int:
        cwd = _getcwd()
        routes = load_routes(self.config, self.environ, cwd)
        spec = routes.route_for(self.name)
        if spec is None:
            if self.wrapper_dir is None:
                raise DispatchError(f"not a routed command in {routes.config}", NOT_FOUND)
            native = _find_native(self.name, self.wrapper_dir, self.environ)
            if native is None:
                raise DispatchError(
                    f"command not found: not routed in {routes.config} and not"
                    " installed in this container", NOT_FOUND)
            return _exec_native(native, self.name, self.args)
        self.endpoint = transport.parse_host(self.environ.get("DOCKER_HOST"))
        paths = spec.paths
        self.remote_argv = [*spec.argv, *map_args(self.args, paths)]
        self.workdir = pick_workdir(cwd, paths, spec.workdir)
        self.user = expand_user(spec.user, self.environ) if spec.user else None
        if spec.user and not self.user:
            raise DispatchError(f"user {spec.user!r}: PUID/PGID must be numbers")
        env_list = [f"{key}={self.environ[key]}" for key in spec.env if key in self.environ]
        env_list.append(f"{killer.TOKEN_ENV}={self.token}")
        mode = spec.tty
        tty = mode == "always" or (mode == "auto" and os.isatty(0) and os.isatty(1))
        code: int | None = None
        signum: int | None = None
        self._install_handlers()
        try:
            code = self._execute(routes, spec, env_list, tty)
            return code
        except _Stop as stop:
            signum = stop.signum
            self._stop_remote()
            code = TIMEOUT if stop.timed_out else 128 + stop.signum
            if stop.timed_out:
                _say(f"sidecar: {self.name}: timed out after {spec.timeout:g} s,"
                     " terminated")
                signum = None
            return code
        except DispatchError as exc:
            code = exc.exit_code
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            code = ENGINE
            where = transport.describe(self.endpoint)
            raise DispatchError(
                f"the Docker engine at {where} failed while running the command in container "
                f"{self.container or spec.container}: {type(exc).__name__}: {exc}") from None
        finally:
            _signal.setitimer(_signal.ITIMER_REAL, 0)
            self._restore_tty()
            self._restore_handlers()
            self._audit(code, signum)

    def _install_handlers(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            raise _Stop(signum)

        def timeout(_signum: int, _frame: Any) -> None:
            raise _Stop(_signal.SIGALRM, timed_out=True)

        for sig in _HANDLED_SIGNALS:
            self.old_handlers[sig] = _signal.signal(sig, stop)
        self.old_handlers[_signal.SIGALRM] = _signal.signal(_signal.SIGALRM, timeout)

    def _restore_handlers(self) -> None:
        for sig, handler in self.old_handlers.items():
            _signal.signal(sig, handler)
        self.old_handlers.clear()

    def _quiet_handlers(self) -> None:
        # While cleaning up, further signals must not interrupt the cleanup itself.
        for sig in (*_HANDLED_SIGNALS, _signal.SIGALRM):
            _signal.signal(sig, _signal.SIG_IGN)

    def _connect(self) -> Connection:
        # A bound on every API answer; the exec stream itself has none (see _pump).
        return Connection(transport.connect(self.endpoint, timeout=API_TIMEOUT))

    def _resolve(self, conn: Connection, routes: RouteTable, logical: str) -> str:
        """Container reference for `logical`: `containers`, then compose service, then literal."""
        self.service = logical
        mapped = routes.containers.get(logical)
        if mapped:
            self.container = self.container_ref = str(mapped)
            return self.container_ref
        labels = [f"{SERVICE_LABEL}={logical}"]
        if routes.project:
            labels.append(f"{PROJECT_LABEL}={routes.project}")
        query = quote(jsonlite.dumps({"label": labels}))
        response = conn.request("GET", f"/containers/json?all=1&filters={query}")
        if response.status == 200:
            chosen = pick_member(service_members(response.json(), logical, routes.project))
            if chosen is not None:
                cid = str(chosen["Id"])
                names = chosen.get("Names") or ["/" + cid[:12]]
                self.container = str(names[0]).lstrip("/")
                self.container_ref = cid
                return cid
        elif response.status == 403:
            raise DispatchError(
                f"permission denied by the Docker API gate: {response.message()}")
        # Not a compose service (or the engine refused the listing): a literal name.
        self.container = self.container_ref = logical
        return logical

    def _engine_error(self, status: int, message: str) -> DispatchError:
        if status == 403:
            return DispatchError(f"permission denied by the Docker API gate: {message}")
        if status == 404:
            return DispatchError(
                f"container {self.container} does not exist: start it with "
                f"`docker compose up -d {self.service}` or fix `container` in bridge.yaml"
                f" ({message})")
        if status == 409:
            if "paused" in message.lower():
                return DispatchError(f"container {self.container} is paused: "
                                     f"docker compose unpause {self.service}")
            return DispatchError(f"container {self.container} is not running: "
                                 f"docker compose up -d {self.service}")
        return DispatchError(
            f"Docker engine error for container {self.container}: {message} (HTTP {status})")

    # -- the exec ----------------------------------------------------------------------------

    def _execute(self, routes: RouteTable, spec: Route, env_list: list[str], tty: bool) -> int:
        conn = self._connect()
        try:
            ref = self._resolve(conn, routes, spec.container)
            body: dict[str, Any] = {
                "AttachStdin": True,
                "AttachStdout": True,
                "AttachStderr": True,
                "Tty": tty,
                "Env": env_list,
                "Cmd": self.remote_argv,
                "WorkingDir": self.workdir,
            }
            if self.user:
                body["User"] = self.user
            created = conn.request("POST", f"/containers/{quote(ref)}/exec", body)
            if created.status != 201:
                raise self._engine_error(created.status, created.message())
            exec_id = created.json()["Id"]
            self.exec_id = exec_id
            timeout = spec.timeout
            if timeout:
                _signal.setitimer(_signal.ITIMER_REAL, float(timeout))
            self.running = True
            started = conn.upgrade(f"/exec/{exec_id}/start", {"Detach": False, "Tty": tty})
            if started.status not in (101, 200):
                self.running = False
                raise self._engine_error(started.status, started.message())
            if tty:
                self._enter_tty(exec_id)
            try:
                held = self._pump(conn, tty)
            except OSError as exc:
                raise DispatchError(
                    f"lost the connection to the Docker engine while the command ran in "
                    f"container {self.container}: {exc.strerror or exc}") from None
        finally:
            conn.close()
        return self._finish(held)

    def _enter_tty(self, exec_id: str) -> None:
        if os.isatty(0):
            import termios
            import tty as ttymod

            try:
                saved = termios.tcgetattr(0)
                ttymod.setraw(0, termios.TCSANOW)
            except termios.error:
                saved = None
            if saved is not None:
                self.tty_restore = (termios.tcsetattr, saved)

        def winch(_signum: int, _frame: Any) -> None:
            self._resize(exec_id)

        self.old_handlers.setdefault(_signal.SIGWINCH, _signal.signal(_signal.SIGWINCH, winch))
        self._resize(exec_id)

    def _resize(self, exec_id: str) -> None:
        for fd in (1, 0, 2):
            try:
                size = os.get_terminal_size(fd)
                break
            except OSError:
                continue
        else:
            return
        try:
            conn = self._connect()
            try:
                conn.request("POST", f"/exec/{exec_id}/resize?h={size.lines}&w={size.columns}")
            finally:
                conn.close()
        except (DispatchError, OSError):
            pass  # a lost resize is cosmetic

    def _restore_tty(self) -> None:
        if self.tty_restore is not None:
            setter, saved = self.tty_restore
            self.tty_restore = None
            try:
                import termios

                setter(0, termios.TCSADRAIN, saved)
            except Exception:  # noqa: S110 - the terminal may be gone; nothing to restore
                pass

    def _pump(self, conn: Connection, tty: bool) -> bytes | None:
        """Copy stdin to the exec and its output to stdout/stderr until the stream ends.

        Returns the held first output when it looked like a daemon start error.
        """
        sock = conn.sock
        sock.settimeout(None)
        _thread.start_new_thread(_copy_stdin, (sock,))
        demux = None if tty else Demuxer()
        held: bytearray | None = None
        first = True
        buffer = bytearray(RECV_SIZE)
        view = memoryview(buffer)
        pending = bytes(conn.buf)
        conn.buf.clear()
        while True:
            if pending:
                data = memoryview(pending)
                pending = b""
            else:
                count = sock.recv_into(buffer)
                if not count:
                    break
                data = view[:count]
            pieces = [(STDOUT, data)] if demux is None else demux.feed(data)
            for stream, piece in pieces:
                if first and stream in (STDOUT, SYSTEM_ERROR):
                    first = False
                    if bytes(piece[:32]).startswith(_DAEMON_ERROR_PREFIXES):
                        held = bytearray(piece)
                        continue
                elif held is not None and stream == STDOUT and len(held) < _HELD_LIMIT:
                    held += piece
                    continue
                if held is not None:
                    _write(1, held)
                    held = None
                first = False
                _write(2 if stream in (STDERR, SYSTEM_ERROR) else 1, piece)
        return bytes(held) if held is not None else None

    def _finish(self, held: bytes | None) -> int:
        code = self._exit_code()
        self.running = False
        if code in (128 + 9, 128 + 15) and not self._container_running():
            raise DispatchError(
                f"container {self.container} stopped while the command was running"
                f" (exit code {code}): docker compose up -d {self.service}")
        if held is not None:
            if code in (NOT_EXECUTABLE, NOT_FOUND):
                text = held.decode("utf-8", "replace").strip()
                message, mapped = _daemon_error(text, self.container)
                raise DispatchError(message, mapped)
            _write(1, held)
        return code

    def _container_running(self) -> bool:
        # Only asked when the command died of KILL or TERM, what `docker stop`/`kill` send; the
        # daemon may report the exec's end before the container's, hence a short poll. A
        # refusal (gate) counts as running.
        deadline = time.monotonic() + 0.3
        try:
            conn = self._connect()
            try:
                while True:
                    response = conn.request(
                        "GET", f"/containers/{quote(self.container_ref)}/json")
                    if response.status == 404:
                        return False
                    if response.status != 200:
                        return True
                    state = response.json().get("State") or {}
                    if not state.get("Running", True) or state.get("Restarting"):
                        return False
                    if time.monotonic() > deadline:
                        return True
                    time.sleep(0.05)
            finally:
                conn.close()
        except (DispatchError, OSError, ValueError):
            return True

    def _exit_code(self) -> int:
        deadline = time.monotonic() + 5.0
        conn = self._connect()
        try:
            while True:
                response = conn.request("GET", f"/exec/{self.exec_id}/json")
                if response.status != 200:
                    raise self._engine_error(response.status, response.message())
                info = response.json()
                code = info.get("ExitCode")
                if isinstance(code, int) and not info.get("Running"):
                    return code & 0xFF if code >= 0 else 128 + (-code & 0x7F)
                if time.monotonic() > deadline:
                    raise DispatchError(
                        f"lost the exit code of the command in container {self.container}")
                time.sleep(0.005)
        finally:
            conn.close()

    # -- cleanup -----------------------------------------------------------------------------

    def _stop_remote(self) -> None:
        """Terminate the remote command and its children through the cleanup exec."""
        self._quiet_handlers()
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        if not self.running or self.exec_id is None:
            return
        self.running = False
        body: dict[str, Any] = {
            "AttachStdin": False,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": False,
            "Cmd": killer.kill_command(self.token),
        }
        if self.user:
            body["User"] = self.user
        try:
            conn = Connection(transport.connect(self.endpoint, timeout=killer.GRACE_SECONDS + 8))
            try:
                created = conn.request(
                    "POST", f"/containers/{quote(self.container_ref)}/exec", body)
                if created.status != 201:
                    _say(f"sidecar: {self.name}: could not stop the command in container "
                         f"{self.container}: {created.message()}")
                    return
                kill_id = created.json()["Id"]
                started = conn.upgrade(f"/exec/{kill_id}/start", {"Detach": False, "Tty": False})
                if started.status in (101, 200):
                    while conn.sock.recv(65536):  # wait until the script is done
                        pass
            finally:
                conn.close()
        except (DispatchError, OSError, ValueError) as exc:
            _say(f"sidecar: {self.name}: could not stop the command in container "
                 f"{self.container}: {exc}")

    # -- audit -------------------------------------------------------------------------------

    def _audit(self, code: int | None, signum: int | None) -> None:
        path = self.environ.get("SIDECAR_AUDIT_LOG")
        if not path or not self.container:
            return
        now = time.time()
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now * 1000) % 1000:03d}Z",
            "command": self.name,
            "argv": self.remote_argv,
            "container": self.container,
            "workdir": self.workdir,
            "user": self.user,
            "exit_code": code,
            "signal": signum,
            "duration_ms": int((time.monotonic() - self.started) * 1000),
        }
        line = (jsonlite.dumps(record) + "\n").encode("ascii")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)  # one write with O_APPEND: lines never interleave
            finally:
                os.close(fd)
        except OSError as exc:
            _say(f"sidecar: cannot write the audit log {path}: {exc.strerror}")


def _write(fd: int, data: memoryview | bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BrokenPipeError:
            # The reader went away: stop the remote command as if we got SIGPIPE.
            raise _Stop(_signal.SIGPIPE) from None
        view = view[written:]


def _copy_stdin(sock: _socket.socket) -> None:
    """Thread: stream stdin into the exec, then half-close so the process reads EOF."""
    try:
        while True:
            chunk = os.read(0, STDIN_CHUNK)
            if not chunk:
                break
            sock.sendall(chunk)
    except OSError:
        pass
    try:  # noqa: SIM105
        sock.shutdown(_socket.SHUT_WR)
    except OSError:
        pass
