"""The cleanup exec: how the dispatcher terminates a remote command (Docker cannot kill an exec).

Every exec the dispatcher starts carries `SIDECAR_EXEC_TOKEN=<32 hex>` in its environment, which
its children inherit. To stop it, the dispatcher runs a second exec in the same container as the
same user, with exactly this shape (the Docker API gate allows it and nothing like it):

    Cmd = ["sh", "-c", KILL_SCRIPT, "sh", "<token>"]

The script sends TERM to every process whose /proc/PID/environ holds the token, waits up to
GRACE_SECONDS for them to go, then sends KILL; it exits 0 when it found processes to stop, and
`NOTHING_FOUND` when there were none (the command had ended by itself). It needs `sh`, `tr`,
`grep` and `kill` in the container (any shell image has them; `sleep` with fractions, else it
waits whole seconds).
"""

from __future__ import annotations

from sidecar_gen.runtime import engine
from sidecar_gen.runtime.errors import DispatchError
from sidecar_gen.runtime.names import EXEC_TOKEN_ENV

# typing and collections.abc cost milliseconds to import on every command: types are for mypy
# only (mypy treats any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sidecar_gen.runtime.transport import Endpoint

GRACE_SECONDS = 2
NOTHING_FOUND = 3

# environ is NUL-separated: `tr` makes it lines, since busybox `grep -F` stops at the first NUL.
# $$ and the command substitutions' subshells do not carry the token (it is an argument of
# this exec, not part of its environment), so the script never matches itself.
KILL_SCRIPT = (
    'case "$1" in *[!0-9a-f]*|"") exit 2;; esac\n'
    f't="{EXEC_TOKEN_ENV}=$1"\n'
    "pids() {\n"
    "  for f in /proc/[0-9]*/environ; do\n"
    '    p="${f#/proc/}"; p="${p%/environ}"\n'
    '    [ "$p" = "$$" ] && continue\n'
    '    tr "\\0" "\\n" <"$f" 2>/dev/null | grep -qxF "$t" && echo "$p"\n'
    "  done\n"
    "}\n"
    'p="$(pids)"\n'
    # Nothing yet may mean the command is still being started (signal right after the start):
    # look once more before concluding it is gone.
    '[ -z "$p" ] && { sleep 0.2 2>/dev/null || sleep 1; p="$(pids)"; }\n'
    f'[ -z "$p" ] && exit {NOTHING_FOUND}\n'
    "kill -TERM $p 2>/dev/null\n"
    "i=0\n"
    f"while [ $i -lt {GRACE_SECONDS * 10} ]; do\n"
    "  sleep 0.1 2>/dev/null || sleep 1\n"
    '  p="$(pids)"\n'
    '  [ -z "$p" ] && exit 0\n'
    "  i=$((i + 1))\n"
    "done\n"
    "kill -KILL $p 2>/dev/null\n"
    "exit 0\n"
)


def kill_command(token: str) -> list[str]:
    """The exact `Cmd` of the cleanup exec for `token`."""
    return ["sh", "-c", KILL_SCRIPT, "sh", token]


def stop(endpoint: Endpoint, ref: str, user: str | None, token: str) -> tuple[bool, str | None]:
    """Run the cleanup exec for `token` in container `ref` as `user` (only the command's own
    user may signal it when the container's default user is another non-root one), and wait
    until it is done. Returns whether it found processes to stop (True when that is unknown),
    and what went wrong, or None."""
    config: dict[str, Any] = {"AttachStdin": False, "AttachStdout": True,
                              "AttachStderr": True, "Tty": False, "Cmd": kill_command(token)}
    if user:
        config["User"] = user
    try:
        conn = engine.connect(endpoint, timeout=GRACE_SECONDS + 8)
        try:
            kill_id = engine.create_exec(conn, ref, config)
            engine.start_exec(conn, kill_id, tty=False)
            while conn.sock.recv(65536):  # the script's end closes the stream
                pass
        finally:
            conn.close()
        state = engine.call_once(endpoint, engine.inspect_exec, kill_id)
    except (DispatchError, OSError) as exc:
        return True, str(exc)
    return state.exit_code != NOTHING_FOUND, None
