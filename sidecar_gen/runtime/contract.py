"""The one contract between bridge.yaml, the route cache, the dispatcher and the gate.

- `Route`: one routed command, as validation builds it (`model.Bridge.commands`), as the route
  cache stores it, as the dispatcher and the gate read it and as `sidecar init` proposes it.
  Its options are declared once, in `ROUTE_OPTIONS` (bridge.yaml key, field, how the YAML value
  becomes the field's and back) and the constructor (types, defaults): `Route.from_spec` builds
  one from a validated bridge.yaml entry, `Route.to_spec` writes one back, the cache record and
  `CACHE_VERSION` derive from the fields (adding, removing or reordering one changes the cache
  version by construction), and a test holds the JSON Schema's command properties to them.
- `RouteTable`: a whole compiled bridge.yaml (the dispatcher's view).
- The labels compose puts on containers and the role labels `sidecar render` adds, and the one
  rule for what a compose service name means (`service_members`, `pick_member`), used by the
  dispatcher to choose a container and by the gate to decide which containers are targets.

Stdlib-only and cheap to import: the dispatcher loads it on every command.
"""

from __future__ import annotations

# typing and collections.abc cost milliseconds to import on every command: types are for mypy
# only (mypy treats any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

# -- labels -------------------------------------------------------------------------------------

SERVICE_LABEL = "com.docker.compose.service"
PROJECT_LABEL = "com.docker.compose.project"
ONEOFF_LABEL = "com.docker.compose.oneoff"
NUMBER_LABEL = "com.docker.compose.container-number"
# Put by `sidecar render` on the services it generates (templates get these names from here).
ROLE_LABEL = "dev.claude-sidecar.role"
ROLE_CLAUDE = "claude"
ROLE_GATE = "gate"
ROLE_VIEWER = "viewer"
ROLE_BROKER = "broker"
# Never targets, whatever bridge.yaml says: the gate holds the engine socket, the broker the
# real credential, the Claude and viewer containers the session history.
PROTECTED_ROLES = frozenset({ROLE_CLAUDE, ROLE_GATE, ROLE_VIEWER, ROLE_BROKER})
# A container `sidecar init` creates from an image to read it, and removes; it is never started.
ROLE_IMAGE_PROBE = "image-probe"

TTY_MODES = ("auto", "always", "never")
STDIN_MODES = ("auto", "always", "never")


# -- one routed command -------------------------------------------------------------------------


def split_exec(value: str | list[str]) -> tuple[str, ...]:
    """`exec` as argv: a string split like a POSIX shell splits words, a list literally.

    Raises ValueError for unbalanced quotes."""
    if isinstance(value, list):
        return tuple(value)
    import shlex  # bridge.yaml's slow path only: the dispatcher reads compiled routes

    return tuple(shlex.split(value, comments=False, posix=True))


def join_exec(argv: tuple[str, ...]) -> str:
    """`exec` as the one string `split_exec` reads back as `argv`."""
    import shlex

    return shlex.join(argv)


def mapping_pairs(paths: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """`paths` as normalized (Claude path, container path) pairs, longest prefix first (the
    dispatcher takes the first whole-component match)."""
    import posixpath

    pairs = {
        posixpath.normpath(k).replace("//", "/"): posixpath.normpath(v).replace("//", "/")
        for k, v in paths.items()
    }
    return tuple(sorted(pairs.items(), key=lambda kv: (-len(kv[0]), kv[0])))


# A routed command's options, in bridge.yaml's order: key -> (Route field, how the YAML value
# becomes the field's, how the field is written back); None: as it is. Types and defaults are
# the constructor's. A new option is a row here, a keyword of `Route.__init__`, its property in
# the JSON Schema, and the code that acts on it.
ROUTE_OPTIONS: dict[str, tuple[str, Callable[[Any], Any] | None, Callable[[Any], Any] | None]] = {
    "container": ("container", None, None),
    "exec": ("argv", split_exec, join_exec),
    "workdir": ("workdir", None, None),
    "paths": ("paths", mapping_pairs, dict),
    "user": ("user", None, None),
    "env": ("env", tuple, list),
    "tty": ("tty", None, None),
    "stdin": ("stdin", None, None),
    "timeout": ("timeout", float, None),
}


class Route:
    """One routed command: the container it runs in and how.

    `container` is a logical name (a key of `containers:`), a compose service or a literal
    container name; `argv` is `exec` split into words; `paths` are (Claude path, container
    path) pairs, longest prefix first; `user` may hold `${PUID}`/`${PGID}`; `env` names the
    variables passed through; `tty` is one of `TTY_MODES`; `stdin` one of `STDIN_MODES`
    (whether the command gets the caller's stdin); `timeout` is in seconds.
    """

    __slots__ = tuple(sorted(field for field, _parse, _show in ROUTE_OPTIONS.values()))

    def __init__(
        self,
        container: str,
        argv: tuple[str, ...],
        *,
        workdir: str | None = None,
        paths: tuple[tuple[str, str], ...] = (),
        user: str | None = None,
        env: tuple[str, ...] = (),
        tty: str = "auto",
        stdin: str = "auto",
        timeout: float | None = None,
    ) -> None:
        self.container = container
        self.argv = tuple(argv)
        self.workdir = workdir
        self.paths = tuple((str(a), str(b)) for a, b in paths)
        self.user = user
        self.env = tuple(env)
        self.tty = tty
        self.stdin = stdin
        self.timeout = timeout

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Route:
        """The route of a validated bridge.yaml command entry (an absent option: its default)."""
        values = {}
        for key, (field, parse, _show) in ROUTE_OPTIONS.items():
            value = spec.get(key)
            if value is not None:
                values[field] = parse(value) if parse else value
        return cls(**values)

    def to_spec(self) -> dict[str, Any]:
        """The bridge.yaml entry of this route: the options that differ from their defaults, in
        `ROUTE_OPTIONS` order (`from_spec` reads it back as this route)."""
        defaults = Route.__init__.__kwdefaults__ or {}
        out = {}
        for key, (field, _parse, show) in ROUTE_OPTIONS.items():
            value = getattr(self, field)
            if field not in defaults or value != defaults[field]:
                out[key] = show(value) if show else value
        return out

    def to_record(self) -> tuple[Any, ...]:
        """The plain tuple the route cache stores (marshal-able), in `FIELDS` order."""
        return tuple(getattr(self, name) for name in FIELDS)

    @classmethod
    def from_record(cls, record: tuple[Any, ...]) -> Route:
        """The inverse of `to_record`; ValueError when the record has another shape."""
        if not isinstance(record, tuple) or len(record) != len(FIELDS):
            raise ValueError("route record does not match this version's fields")
        return cls(**dict(zip(FIELDS, record, strict=True)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Route) and self.to_record() == other.to_record()

    def __hash__(self) -> int:
        return hash(self.to_record())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in FIELDS)
        return f"Route({fields})"


FIELDS: tuple[str, ...] = Route.__slots__


def default_route(container: str, name: str) -> Route:
    """How a command that bridge.yaml does not list runs in `default_container`: under its own
    name, with nothing mapped, as the container's default user."""
    return Route(container, (name,))


# -- a compiled bridge.yaml ---------------------------------------------------------------------


class RouteTable:
    """Everything the dispatcher reads from one version of bridge.yaml."""

    __slots__ = ("commands", "config", "containers", "default", "project", "stamp")

    def __init__(
        self,
        config: str,
        stamp: tuple[int, int, int],
        commands: Mapping[str, Route],
        containers: Mapping[str, str],
        *,
        default: str | None = None,
        project: str | None = None,
    ) -> None:
        self.config = config  # absolute path of bridge.yaml
        self.stamp = stamp  # (st_mtime_ns, st_size, st_ino) of the version compiled
        self.commands = dict(commands)
        self.containers = dict(containers)  # logical name -> literal container name
        self.default = default
        self.project = project

    def route_for(self, name: str) -> Route | None:
        """The route of command `name`: listed, else through `default_container`, else None."""
        route = self.commands.get(name)
        if route is None and self.default:
            return default_route(self.default, name)
        return route

    def to_record(self) -> tuple[Any, ...]:
        """The marshal-able form, led by `CACHE_VERSION`."""
        commands = {name: route.to_record() for name, route in self.commands.items()}
        return (CACHE_VERSION, self.config, self.stamp, commands, self.containers, self.default,
                self.project)

    @classmethod
    def from_record(cls, record: Any) -> RouteTable:
        """The inverse of `to_record`; ValueError for another version or shape."""
        if not isinstance(record, tuple) or len(record) != 7 or record[0] != CACHE_VERSION:
            raise ValueError("route cache written by another version")
        _version, config, stamp, commands, containers, default, project = record
        routes = {name: Route.from_record(rec) for name, rec in commands.items()}
        return cls(config, stamp, routes, containers, default=default, project=project)


def fnv1a(text: str) -> int:
    """A stable 64-bit hash of `text` (hashlib would cost an import on every command)."""
    value = 0xCBF29CE484222325
    for byte in text.encode("utf-8", "surrogateescape"):
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


# Derived, never bumped by hand: a change of either record layout is a new cache version.
CACHE_VERSION = fnv1a("route:" + ",".join(FIELDS) + ";table:" + ",".join(RouteTable.__slots__))


# -- what a compose service name means ------------------------------------------------------------


def labels_of(container: Mapping[str, Any]) -> Mapping[str, str]:
    """The labels of one entry of `GET /containers/json` (empty when absent or malformed)."""
    labels = container.get("Labels")
    return labels if isinstance(labels, dict) else {}


def is_protected(container: Mapping[str, Any]) -> bool:
    """True for a container `sidecar render` generated (claude, gate, viewer): never a target."""
    return labels_of(container).get(ROLE_LABEL) in PROTECTED_ROLES


def service_members(listing: Iterable[Mapping[str, Any]], service: str,
                    project: str | None = None) -> list[Mapping[str, Any]]:
    """The containers compose service `service` stands for (of `project`, when given).

    One-off `docker compose run` containers are not members: they are throwaway copies with
    their own command, not the service the user routed to. The dispatcher picks one member
    (`pick_member`); the gate treats every member as a target.
    """
    out = []
    for container in listing:
        labels = labels_of(container)
        if labels.get(SERVICE_LABEL) != service:
            continue
        if project is not None and labels.get(PROJECT_LABEL) != project:
            continue
        if labels.get(ONEOFF_LABEL, "False") == "True":
            continue
        out.append(container)
    return out


def pick_member(members: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The member a command runs in: a running one first, then the lowest container number
    (`php-1` before `php-2`), then the id, so every call picks the same one."""
    best: tuple[int, int, str] | None = None
    chosen = None
    for container in members:
        number = labels_of(container).get(NUMBER_LABEL, "")
        rank = (0 if container.get("State") == "running" else 1,
                int(number) if number.isdigit() else 1 << 30,
                str(container.get("Id", "")))
        if best is None or rank < best:
            best, chosen = rank, container
    return chosen
