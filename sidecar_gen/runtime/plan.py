"""`ExecPlan`: everything one run of a routed command needs, decided once before the exec starts.

Immutable: the exec's configuration, the cleanup exec and the audit record are all derived from
it, so no step can see another step's half-made state.
"""

from __future__ import annotations

import os

from sidecar_gen.runtime.names import EXEC_TOKEN_ENV, EXEC_TOKEN_HEX_DIGITS
from sidecar_gen.runtime.pathmap import map_args, pick_workdir
from sidecar_gen.runtime.terminal import DETACH_KEYS
from sidecar_gen.runtime.userspec import HOME_ENV, home_for

# typing and collections.abc cost milliseconds to import on every command: types are for mypy
# only (mypy treats any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from sidecar_gen.runtime.contract import Route
    from sidecar_gen.runtime.transport import Endpoint

_CHAR_DEVICE = 0o020000
_FILE_TYPE = 0o170000


def stdin_wanted(mode: str) -> bool:
    """Whether to attach stdin: `always`, `never`, or (`auto`) when there is a real one (not
    closed, not /dev/null: then the program gets /dev/null in the container too)."""
    if mode != "auto":
        return mode == "always"
    try:
        st = os.fstat(0)
    except OSError:
        return False  # closed
    if st.st_mode & _FILE_TYPE != _CHAR_DEVICE:
        return True
    try:
        return st.st_rdev != os.stat(os.devnull).st_rdev
    except OSError:
        return True


class ExecPlan:
    """One run of a routed command (read-only once built)."""

    __slots__ = ("argv", "container", "endpoint", "env", "name", "ref", "route", "stdin",
                 "token", "tty", "user", "workdir")

    # Two words, two things: the `service` is what bridge.yaml names (a compose service, or a
    # key of `containers:`), what `docker compose up -d` starts; the `container` is the one the
    # exec runs in, resolved from it.
    name: str  # the command as typed
    route: Route  # how bridge.yaml routes it (the options the plan does not resolve)
    argv: tuple[str, ...]  # what runs in the container
    container: str  # the container's name, for messages and the audit log
    ref: str  # what the API calls use: an id when resolved through compose labels
    user: str | None  # the route's user with ${PUID}/${PGID} filled in
    workdir: str
    env: tuple[str, ...]  # NAME=value entries, the cleanup token included
    token: str  # marks the command's processes for the cleanup exec
    tty: bool
    stdin: bool  # attach stdin
    endpoint: Endpoint

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, fields[name])

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"an ExecPlan is read-only (tried to set {name})")

    @classmethod
    def build(cls, name: str, args: list[str], route: Route, *, ref: str, container: str,
              user: str | None, endpoint: Endpoint, environ: Mapping[str, str],
              cwd: str) -> ExecPlan:
        """The plan for running `name args` through `route` in the resolved container."""
        token = os.urandom(EXEC_TOKEN_HEX_DIGITS // 2).hex()
        env = [f"{key}={environ[key]}" for key in route.env if key in environ]
        home = home_for(user, route.env)
        if home:
            env.append(f"{HOME_ENV}={home}")
        env.append(f"{EXEC_TOKEN_ENV}={token}")
        mode = route.tty
        tty = mode == "always" or (mode == "auto" and os.isatty(0) and os.isatty(1))
        return cls(name=name, route=route, argv=(*route.argv, *map_args(args, route.paths)),
                   container=container, ref=ref, user=user,
                   workdir=pick_workdir(cwd, route.paths, route.workdir), env=tuple(env),
                   token=token, tty=tty, stdin=stdin_wanted(route.stdin), endpoint=endpoint)

    @property
    def service(self) -> str:
        """The compose service (or `containers:` key) the route names."""
        return self.route.container

    def exec_config(self) -> dict[str, Any]:
        """The body of `POST /containers/{ref}/exec`."""
        config: dict[str, Any] = {
            "AttachStdin": self.stdin,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": self.tty,
            "Env": list(self.env),
            "Cmd": list(self.argv),
            "WorkingDir": self.workdir,
        }
        if self.tty:
            config["DetachKeys"] = DETACH_KEYS
        if self.user:
            config["User"] = self.user
        return config
