"""The dispatcher: run a routed command in its container, as if it were installed locally.

Invoked through a symlink whose name is the command (`php -> .sidecar-dispatch`), or through
`sidecar exec NAME`. This module is the orchestration; the layers under it are `transport`
(sockets), `httpclient` (HTTP/1.1), `engine` (one function per Engine API endpoint),
`frames` (the multiplexed stream) and `terminal` (signals, the terminal, pumps). The hot path
imports only builtin or tiny stdlib modules; bridge.yaml is read from the route cache (see
`cache`) and only re-validated when it changed.

Exit codes: the remote one exactly; 124 timeout; 125 engine/gate/config error; 126 not
executable; 127 not found; 128+N when the dispatcher got signal N (the remote command is then
terminated through the cleanup exec of `killer`).
"""

from __future__ import annotations

import os
import sys
import time

from sidecar_gen.runtime import cache, engine, terminal, transport
from sidecar_gen.runtime.contract import (
    PROJECT_LABEL,
    SERVICE_LABEL,
    RouteTable,
    pick_member,
    service_members,
)
from sidecar_gen.runtime.errors import (
    ENGINE,
    NOT_EXECUTABLE,
    NOT_FOUND,
    SIGNAL_BASE,
    TIMEOUT,
    DispatchError,
)
from sidecar_gen.runtime.names import AUDIT_LOG_ENV, DEBUG_ENV
from sidecar_gen.runtime.plan import ExecPlan
from sidecar_gen.runtime.userspec import expand_user

# typing and collections.abc cost milliseconds to import on every command: types are for mypy
# only (mypy treats any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from sidecar_gen.runtime.httpclient import Connection

LAUNCHER_NAME = ".sidecar-dispatch"
SLOW_PATH = cache.SLOW_PATH  # the launcher fills it (the slow path's sys.path entries)
KILLED, TERMINATED = SIGNAL_BASE + 9, SIGNAL_BASE + 15  # what `docker stop`/`kill` leave
START_FAILURE_CODES = (ENGINE, NOT_EXECUTABLE, NOT_FOUND)


def _say(line: str) -> None:
    # Our own lines quote names, paths and the engine's or the gate's words: escaped, so none
    # of it steers the terminal (imported here: only a failure says anything).
    from sidecar_gen.runtime.escape import escape

    try:  # noqa: SIM105 - contextlib is not imported on the hot path
        os.write(2, (escape(line) + "\n").encode("utf-8", "replace"))
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
        return SIGNAL_BASE + 2
    except Exception as exc:
        # A bug: still one line, never a traceback, unless asked for.
        if os.environ.get(DEBUG_ENV):
            raise
        _say(f"sidecar: internal error: {type(exc).__name__}: {exc}"
             f" (set {DEBUG_ENV}=1 for the traceback and please report it)")
        return ENGINE


def run(name: str, args: list[str], *, wrapper_dir: str | None = None,
        config: str | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run command `name` with `args` as bridge.yaml routes it; return the exit code.

    `wrapper_dir` is the directory of the symlinks (None for `sidecar exec`: then a command
    that is not routed is an error instead of running natively).
    """
    env = os.environ if environ is None else environ
    try:
        return _dispatch(name, args, wrapper_dir, config, env)
    except DispatchError as exc:
        _say(f"sidecar: {name}: {exc.message}")
        return exc.exit_code
    except terminal.Stop as stop:  # a second signal while the first was being handled
        return TIMEOUT if stop.timed_out else SIGNAL_BASE + stop.signum


def _getcwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return "/"


def _dispatch(name: str, args: list[str], wrapper_dir: str | None, config: str | None,
              environ: Mapping[str, str]) -> int:
    cwd = _getcwd()
    routes = cache.load_routes(config, environ, cwd)
    route = routes.route_for(name)
    if route is None:
        if wrapper_dir is None:
            raise DispatchError(f"not a routed command in {routes.config}", NOT_FOUND)
        from sidecar_gen.runtime import native  # off the hot path, as every rare branch here

        found = native.find_native(name, wrapper_dir, LAUNCHER_NAME, environ)
        if found is None:
            raise DispatchError(f"command not found: not routed in {routes.config} and not"
                                " installed in this container", NOT_FOUND)
        return native.exec_native(found, name, args)
    endpoint = transport.parse_host(environ.get("DOCKER_HOST"))
    user = expand_user(route.user, environ) if route.user else None
    if route.user and not user:
        raise DispatchError(f"user {route.user!r}: PUID/PGID must be numbers")
    started = time.monotonic()
    signals = terminal.Signals()
    signals.install()
    plan: ExecPlan | None = None
    code: int | None = None
    signum: int | None = None
    try:
        conn = engine.connect(endpoint)
        try:
            ref, container = _resolve(conn, routes, route.container)
            plan = ExecPlan.build(name, args, route, ref=ref, container=container, user=user,
                              endpoint=endpoint, environ=environ, cwd=cwd)
            code = _execute(plan, conn, signals)
        finally:
            conn.close()
        return code
    except terminal.Stop as stop:
        code = TIMEOUT if stop.timed_out else SIGNAL_BASE + stop.signum
        signum = None if stop.timed_out else stop.signum
        if stop.timed_out:
            _say(f"sidecar: {name}: timed out after {route.timeout:g} s, terminated")
        return code
    except DispatchError as exc:
        code = exc.exit_code
        raise
    finally:
        signals.restore()
        if plan is not None and environ.get(AUDIT_LOG_ENV):
            from sidecar_gen.runtime import audit

            problem = audit.log_run(environ, plan, code, signum, time.monotonic() - started)
            if problem:
                _say(f"sidecar: {problem}")


def _resolve(conn: Connection, routes: RouteTable, logical: str) -> tuple[str, str]:
    """(reference, name) of the container for `logical`: through `containers`, else the
    compose service of that name, else a literal container name."""
    mapped = routes.containers.get(logical)
    if mapped:
        return mapped, mapped
    labels = [f"{SERVICE_LABEL}={logical}"]
    if routes.project:
        labels.append(f"{PROJECT_LABEL}={routes.project}")
    try:
        listing = engine.list_containers(conn, {"label": labels})
    except engine.EngineError as exc:
        if exc.status == engine.REFUSED:
            raise _explain(exc, logical, logical) from None
        return logical, logical  # an engine that cannot list: the name may still be literal
    chosen = pick_member(service_members(listing, logical, routes.project))
    if chosen is None:
        return logical, logical
    cid = str(chosen.get("Id", ""))
    names = chosen.get("Names") or ["/" + cid[:12]]
    return cid, str(names[0]).lstrip("/")


def _explain(error: engine.EngineError, container: str, service: str) -> DispatchError:
    from sidecar_gen.runtime import diagnose  # error paths only: off the hot path

    return diagnose.engine_error(error, container, service)


def _execute(plan: ExecPlan, conn: Connection, signals: terminal.Signals) -> int:
    """Create and start the exec, stream it, and return its exit code. From the start until
    the exit code is known, every way out (a signal, a lost connection, a bug) first stops the
    remote command."""
    try:
        exec_id = engine.create_exec(conn, plan.ref, plan.exec_config())
    except engine.EngineError as exc:
        raise _explain(exc, plan.container, plan.service) from None
    tty_mode = terminal.Terminal()
    running = True  # before the start request: a signal may come while it is on its way
    try:
        signals.arm_timeout(plan.route.timeout)
        try:
            engine.start_exec(conn, exec_id, plan.tty)
        except engine.EngineError as exc:
            running = False
            raise _explain(exc, plan.container, plan.service) from None
        if plan.tty:
            if plan.stdin:  # without stdin, Ctrl-C must stay a local SIGINT
                tty_mode.enter_raw()
            signals.on_resize(lambda: _resize(plan, exec_id))
            _resize(plan, exec_id)
        stdin = terminal.StdinPump(conn.sock, plan.tty)
        if plan.stdin:
            stdin.start()
        pending = bytes(conn.buf)
        conn.buf.clear()
        try:
            output = terminal.pump_output(conn.sock, pending, plan.tty,
                                         lambda: _program_ran(plan, exec_id))
        except OSError as exc:
            raise DispatchError(
                f"lost the connection to the Docker engine while the command ran in container"
                f" {plan.container}: {exc.strerror or exc}") from None
        try:
            state = _final_state(plan, exec_id)
        except engine.EngineError:
            if not _container_stopped(plan):
                raise
            running = False  # the engine dropped the exec with its container: nothing runs
            raise DispatchError(f"container {plan.container} stopped while the command was"
                                f" running: docker compose up -d {plan.service}") from None
        _check_attached(plan, state)
        running = False
    except BaseException:
        if running:
            signals.quiet()
            tty_mode.restore()
            _stop_remote(plan)
        raise
    finally:
        tty_mode.restore()
    if _detached(plan, state, output, stdin, signals):
        raise DispatchError(f"the Docker engine detached from the command in container"
                            f" {plan.container} ({_attach_failure(output)}); it was stopped")
    return verdict(plan, state, output)


def _stop_remote(plan: ExecPlan) -> bool:
    """Stop the command's processes; True when there were any (or it cannot be known)."""
    from sidecar_gen.runtime import killer  # an interrupted command only: off the hot path

    found, problem = killer.stop(plan.endpoint, plan.ref, plan.user, plan.token)
    if problem:
        _say(f"sidecar: {plan.name}: could not stop the command in container {plan.container}:"
             f" {problem}")
    return found


def _resize(plan: ExecPlan, exec_id: str) -> None:
    size = terminal.terminal_size()
    if size is not None:
        try:  # noqa: SIM105
            engine.call_once(plan.endpoint, engine.resize_exec, exec_id, *size)
        except DispatchError:
            pass  # a lost resize is cosmetic


def _program_ran(plan: ExecPlan, exec_id: str) -> bool:
    # A process that never started has no pid; the daemon records that before it writes why.
    state = engine.call_once(plan.endpoint, engine.inspect_exec, exec_id)
    return state.running or state.pid != 0


def _final_state(plan: ExecPlan, exec_id: str) -> engine.ExecState:
    # The daemon records the exit code before it closes the stream; the short grace is for
    # engines (or proxies) that close a moment early.
    deadline = time.monotonic() + 0.5
    while True:
        state = engine.call_once(plan.endpoint, engine.inspect_exec, exec_id)
        if (not state.running and state.exit_code is not None) or time.monotonic() > deadline:
            return state
        time.sleep(0.01)


def _check_attached(plan: ExecPlan, state: engine.ExecState) -> None:
    """Raise when the stream ended while the command still runs (the caller stops it)."""
    if state.running or state.exit_code is None:
        raise DispatchError(
            "the Docker engine stopped sending the output while the command was still running"
            f" in container {plan.container}; it was stopped")


def _attach_failure(output: terminal.Output) -> str | None:
    from sidecar_gen.runtime import diagnose  # a rare case: off the hot path

    return diagnose.attach_failure(output.held if output.held is not None else output.tail)


def _detached(plan: ExecPlan, state: engine.ExecState, output: terminal.Output,
              stdin: terminal.StdinPump, signals: terminal.Signals) -> bool:
    """Whether the daemon let go of a running command (the detach keys, a broken stdin copy),
    which it reports as exit code 126 and a last line in the stream, while the command goes
    on or dies of the closed terminal; it is stopped here. What tells it apart from a program
    that printed that line and exited 126: that we sent the keys, or that the command's
    processes were still there. Podman ends its stream with its own line (and forgets the pid
    of an ended process): there the line and the same proof decide."""
    if state.pid_kept and (state.exit_code != NOT_EXECUTABLE or not state.pid):
        return False
    if not _attach_failure(output):
        return False
    signals.quiet()
    found = _stop_remote(plan)
    return found or stdin.sent_detach_keys


def verdict(plan: ExecPlan, state: engine.ExecState, output: terminal.Output) -> int:
    """The exit code to return, decided from the engine's answer, never from the output."""
    raw = state.exit_code or 0
    code = raw & 0xFF if raw >= 0 else SIGNAL_BASE + (-raw & 0x7F)
    if never_started(state, output, code):  # what the stream held is the engine's why
        from sidecar_gen.runtime import diagnose

        text = (output.held or b"").decode("utf-8", "replace").strip()
        raise diagnose.start_failure(text, plan.container, code)
    output.write_held()
    if code in (KILLED, TERMINATED) and _container_stopped(plan):
        raise DispatchError(
            f"container {plan.container} stopped while the command was running"
            f" (exit code {code}): docker compose up -d {plan.service}")
    return code


def never_started(state: engine.ExecState, output: terminal.Output, code: int) -> bool:
    """Whether the engine could not start the process, from what both engines answer.

    Docker keeps the pid of an ended process: 0 means it never started, whatever the stream
    held. Podman reports pid 0 for every ended exec, so there it is its own error text, held
    back from the stream, together with the exit codes it records for a failed start (125: no
    such user or group, 126: not executable, 127: not found); a program that prints that very
    text and exits with one of these codes at once is taken for a failed start (README: limits).
    """
    if state.pid_kept:
        return state.pid == 0
    return (state.pid == 0 and code in START_FAILURE_CODES and output.held is not None
            and output.held.startswith(terminal.PODMAN_PREFIXES))


def _container_stopped(plan: ExecPlan) -> bool:
    # One look, no polling: the engine marks a container stopped only after it delivered the
    # exits of its processes (tens of ms later), so a stop not noted yet stays a plain 137.
    try:
        info = engine.call_once(plan.endpoint, engine.inspect_container, plan.ref)
    except engine.EngineError as exc:
        return exc.status == engine.NOT_FOUND
    except DispatchError:
        return False  # the check only improves a message; the exit code is already known
    state = info.get("State")
    return isinstance(state, dict) and (state.get("Running") is False
                                        or state.get("Restarting") is True)
