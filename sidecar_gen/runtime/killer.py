"""The cleanup exec: how the dispatcher terminates a remote command (Docker cannot kill an exec).

Every exec the dispatcher starts carries `SIDECAR_EXEC_TOKEN=<32 hex>` in its environment, which
its children inherit. To stop it, the dispatcher runs a second exec in the same container as the
same user, with exactly this shape (the Docker API gate allows it and nothing like it):

    Cmd = ["sh", "-c", KILL_SCRIPT, "sh", "<token>"]

The script sends TERM to every process whose /proc/PID/environ holds the token, waits up to
GRACE_SECONDS for them to go, then sends KILL. It needs `sh`, `tr`, `grep` and `kill` in the
container (any shell image has them; `sleep` with fractions, else it waits whole seconds).
"""

from __future__ import annotations

TOKEN_ENV = "SIDECAR_EXEC_TOKEN"  # noqa: S105 - a name, not a secret
GRACE_SECONDS = 2
TOKEN_HEX_DIGITS = 32

# environ is NUL-separated: `tr` makes it lines, since busybox `grep -F` stops at the first NUL.
# $$ and the command substitutions' subshells do not carry the token (it is an argument of
# this exec, not part of its environment), so the script never matches itself.
KILL_SCRIPT = (
    'case "$1" in *[!0-9a-f]*|"") exit 2;; esac\n'
    't="SIDECAR_EXEC_TOKEN=$1"\n'
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
    '[ -z "$p" ] && exit 0\n'
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
