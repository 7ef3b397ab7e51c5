"""The gate's policy: pure functions from a request (and the engine's container list) to a
decision. Nothing here does I/O; the server feeds it data and acts on the answer.

Rules (issue 4): only `/_ping`, `/version`, the container list (filtered), inspect of a target,
exec create into a target with a checked body, and start/resize/inspect of exec ids this gate
created. Everything else is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sidecar_gen.gate.urlpath import PathRejectedError, Target, canonicalize
from sidecar_gen.model import Bridge
from sidecar_gen.runtime.contract import is_protected, service_members
from sidecar_gen.runtime.killer import KILL_SCRIPT, TOKEN_ENV, TOKEN_HEX_DIGITS
from sidecar_gen.runtime.userspec import FALLBACK_HOME, HOME_ENV, expand_user

# The dispatcher's cleanup exec is `KILL_CMD + [token]` (sidecar_gen.runtime.killer).
KILL_CMD = ("sh", "-c", KILL_SCRIPT, "sh")

MAX_EXEC_BODY = 64 * 1024
MAX_START_BODY = 4 * 1024

ExecKeys = frozenset({"Detach", "AttachStdin", "AttachStdout", "AttachStderr", "DetachKeys",
                      "Tty", "Env", "Cmd", "Privileged", "User", "WorkingDir", "ConsoleSize"})
StartKeys = frozenset({"Detach", "Tty", "ConsoleSize"})

Kind = Literal["ping", "version", "list", "inspect", "exec_create", "exec_start", "exec_resize",
               "exec_json"]

_EXEC_ID = re.compile(r"[0-9a-f]{64}")
_TOKEN_VALUE = re.compile(f"[0-9a-f]{{{TOKEN_HEX_DIGITS}}}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class RefusedError(Exception):
    """A request the gate refuses: HTTP `status` (403, or 400 for malformed) and a `reason`."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Route:
    """An allowed request shape: what kind, which container ref or exec id, canonical target."""

    kind: Kind
    target: Target
    ref: str | None = None  # container reference (name, id, id prefix) or exec id


_ROUTES: dict[tuple[str, ...], tuple[Kind, frozenset[str]]] = {
    ("_ping",): ("ping", frozenset({"GET", "HEAD"})),
    ("version",): ("version", frozenset({"GET"})),
    ("containers", "json"): ("list", frozenset({"GET"})),
    ("containers", "*", "json"): ("inspect", frozenset({"GET"})),
    ("containers", "*", "exec"): ("exec_create", frozenset({"POST"})),
    ("exec", "*", "start"): ("exec_start", frozenset({"POST"})),
    ("exec", "*", "resize"): ("exec_resize", frozenset({"POST"})),
    ("exec", "*", "json"): ("exec_json", frozenset({"GET"})),
}

_EXEC_KINDS = frozenset({"exec_start", "exec_resize", "exec_json"})
_LIST_QUERY = frozenset({"all", "filters", "limit", "size"})
_BOOL_WORDS = frozenset({"0", "1", "true", "false", "True", "False"})


def classify(method: str, raw_target: str) -> Route:
    """Match a request line against the allowlist; raise `RefusedError` for anything else.

    Methods are compared case-sensitively, the target must be canonical (see `paths`), and
    query strings are refused except the documented ones, which are validated.
    """
    try:
        target = canonicalize(raw_target)
    except PathRejectedError as exc:
        raise RefusedError(f"non-canonical path: {exc.reason}") from exc
    segs = target.segments
    shape: tuple[str, ...] = segs
    ref: str | None = None
    if len(segs) == 3:
        shape = (segs[0], "*", segs[2])
        ref = segs[1]
    entry = _ROUTES.get(shape)
    if entry is None or (len(segs) == 3 and segs[0] not in ("containers", "exec")):
        raise RefusedError("endpoint not in the allowlist")
    kind, methods = entry
    if method not in methods:
        raise RefusedError(f"method {method} not allowed on this endpoint")
    if kind in _EXEC_KINDS and (ref is None or not _EXEC_ID.fullmatch(ref)):
        raise RefusedError("exec id must be a full 64-character lowercase hex id")
    _check_query(kind, target)
    return Route(kind=kind, target=target, ref=ref)


def _check_query(kind: Kind, target: Target) -> None:
    if target.raw_query is None:
        if kind == "exec_resize":
            raise RefusedError("resize needs h and w", status=400)
        return
    params = dict(target.query)
    if kind == "list":
        unknown = set(params) - _LIST_QUERY
        if unknown:
            raise RefusedError(f"query parameter {sorted(unknown)[0]!r} not allowed")
        for key in ("all", "size"):
            if key in params and params[key] not in _BOOL_WORDS:
                raise RefusedError(f"query parameter {key!r} must be a boolean")
        if "limit" in params and not (params["limit"].lstrip("-").isdigit()):
            raise RefusedError("query parameter 'limit' must be an integer")
        if "filters" in params:
            try:
                filters = json.loads(params["filters"])
            except ValueError as exc:
                raise RefusedError("query parameter 'filters' is not JSON") from exc
            if not isinstance(filters, dict):
                raise RefusedError("query parameter 'filters' is not a JSON object")
        return
    if kind == "exec_resize":
        if set(params) != {"h", "w"}:
            raise RefusedError("resize takes exactly the query parameters h and w")
        for key in ("h", "w"):
            value = params[key]
            if not value.isdigit() or len(value) > 5 or int(value) > 65535:
                raise RefusedError(f"resize parameter {key!r} must be an integer 0-65535")
        return
    raise RefusedError("query string not allowed on this endpoint")


@dataclass(frozen=True)
class TargetRule:
    """What may be executed in one target container (merged over all commands routed to it)."""

    users: frozenset[str] = frozenset()  # configured users; an absent `User` is always fine
    env: frozenset[str] = frozenset()  # configured variable names
    argv_prefixes: frozenset[tuple[str, ...]] = frozenset()  # configured `exec` argv
    any_argv: bool = False  # the default container runs any command (strict mode too)
    logical: frozenset[str] = frozenset()  # bridge.yaml names that route here, for the log

    def merge(self, other: TargetRule) -> TargetRule:
        """Union of two rules (several logical names may resolve to one container)."""
        return TargetRule(users=self.users | other.users, env=self.env | other.env,
                          argv_prefixes=self.argv_prefixes | other.argv_prefixes,
                          any_argv=self.any_argv or other.any_argv,
                          logical=self.logical | other.logical)


@dataclass(frozen=True)
class Policy:
    """The policy derived from one bridge.yaml."""

    rules: Mapping[str, TargetRule]  # logical container name -> rule
    containers: Mapping[str, str] = field(default_factory=dict)  # logical -> literal name
    project: str | None = None
    strict: bool = False
    kill_cmd: tuple[str, ...] = KILL_CMD  # the dispatcher's cleanup exec; the token follows

    @classmethod
    def from_bridge(cls, bridge: Bridge, *, strict: bool = False,
                    environ: Mapping[str, str] | None = None) -> Policy:
        """Build the policy from a validated `Bridge`; `environ` fills `${PUID}`/`${PGID}`."""
        rules: dict[str, TargetRule] = {}
        for cmd in bridge.commands.values():
            # `${PUID}:${PGID}` is filled from the gate's environment (render passes the same
            # PUID/PGID as to the Claude container); unfillable, it allows no user at all.
            user = expand_user(cmd.user, environ or {}, own_ids=False) if cmd.user else None
            rule = TargetRule(users=frozenset({user}) if user else frozenset(),
                              env=frozenset(cmd.env), argv_prefixes=frozenset({cmd.argv}),
                              logical=frozenset({cmd.container}))
            rules[cmd.container] = rules[cmd.container].merge(rule) \
                if cmd.container in rules else rule
        if bridge.default_container:
            name = bridge.default_container
            rule = TargetRule(any_argv=True, logical=frozenset({name}))
            rules[name] = rules[name].merge(rule) if name in rules else rule
        return cls(rules=rules, containers=dict(bridge.containers),
                   project=bridge.stack.project, strict=strict)

    @classmethod
    def deny_all(cls) -> Policy:
        """A policy with no targets (used while bridge.yaml is missing or invalid)."""
        return cls(rules={})


@dataclass(frozen=True)
class Resolution:
    """Targets resolved against the engine's container list at one instant."""

    by_id: Mapping[str, TargetRule]  # full container id -> rule
    names: Mapping[str, str]  # every container name (no leading '/') -> full id
    ids: tuple[str, ...]  # every container id (for prefix lookups)
    literal_missing: frozenset[str]  # configured literal names with no container


def _names(container: Mapping[str, Any]) -> list[str]:
    names = container.get("Names")
    if not isinstance(names, list):
        return []
    return [n[1:] if isinstance(n, str) and n.startswith("/") else str(n) for n in names]


def resolve(policy: Policy, containers: Iterable[Mapping[str, Any]],
            self_ids: Iterable[str] = ()) -> Resolution:
    """Resolve the policy's logical container names to container ids.

    `containers` is the engine's `GET /containers/json?all=1` answer. A logical name maps
    through `containers:` to a literal name; otherwise to every member of the compose service
    with that name (`contract.service_members`: the configured project, no one-off
    containers; the dispatcher picks one of the same members); otherwise it is a literal name.
    Containers labelled with a protected role and the gate's own container (`self_ids`, full
    ids or prefixes) are never targets.
    """
    listing = [c for c in containers if isinstance(c.get("Id"), str)]
    names: dict[str, str] = {}
    for c in listing:
        for n in _names(c):
            names[n] = c["Id"]
    selves = tuple(s for s in self_ids if s)

    def protected(c: Mapping[str, Any]) -> bool:
        cid: str = c["Id"]
        return is_protected(c) or any(cid.startswith(s) for s in selves)

    by_id: dict[str, TargetRule] = {}
    missing: set[str] = set()

    def grant(c: Mapping[str, Any], rule: TargetRule) -> None:
        if protected(c):
            return
        cid = c["Id"]
        by_id[cid] = by_id[cid].merge(rule) if cid in by_id else rule

    by_cid = {c["Id"]: c for c in listing}
    for logical, rule in policy.rules.items():
        if logical in policy.containers:
            literal = policy.containers[logical]
        else:
            service = service_members(listing, logical, policy.project)
            if service:
                for c in service:
                    grant(c, rule)
                continue
            literal = logical
        if literal in names:
            grant(by_cid[names[literal]], rule)
        else:
            missing.add(literal)
    return Resolution(by_id=by_id, names=names, ids=tuple(by_cid), literal_missing=frozenset(
        missing))


def lookup(resolution: Resolution, ref: str) -> str | None:
    """The full id Docker would pick for `ref` (full id, exact name, unique id prefix)."""
    if ref in resolution.ids:
        return ref
    if ref in resolution.names:
        return resolution.names[ref]
    matches = [cid for cid in resolution.ids if cid.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    return None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise RefusedError("JSON body repeats a key")
    return dict(pairs)


def parse_json_object(body: bytes, limit: int) -> dict[str, Any]:
    """Decode a small JSON object strictly (UTF-8, no duplicate keys, no NaN)."""
    if len(body) > limit:
        raise RefusedError(f"body larger than {limit} bytes", status=400)
    try:
        text = body.decode("utf-8", errors="strict")

        def no_constants(name: str) -> Any:
            raise RefusedError(f"JSON constant {name} not allowed")

        value = json.loads(text, object_pairs_hook=_reject_duplicates,
                           parse_constant=no_constants)
    except RefusedError:
        raise
    except (ValueError, RecursionError) as exc:
        raise RefusedError(f"body is not valid JSON: {exc}", status=400) from exc
    if not isinstance(value, dict):
        raise RefusedError("body is not a JSON object", status=400)
    return value


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_kill_cmd(policy: Policy, cmd: list[str]) -> bool:
    n = len(policy.kill_cmd)
    return (len(cmd) == n + 1 and tuple(cmd[:n]) == policy.kill_cmd
            and _TOKEN_VALUE.fullmatch(cmd[n]) is not None)


def check_exec_create(policy: Policy, rule: TargetRule, body: bytes) -> dict[str, Any]:
    """Check an exec-create body for a target; return the body to forward or raise `RefusedError`.

    The returned dict holds only known keys with checked types; the server re-serializes it, so
    the engine never sees bytes the gate did not understand.
    """
    doc = parse_json_object(body, MAX_EXEC_BODY)
    unknown = set(doc) - ExecKeys
    if unknown:
        raise RefusedError(f"exec body key {sorted(unknown)[0]!r} not allowed")
    for key in ("Detach", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "Privileged"):
        if key in doc and not isinstance(doc[key], bool):
            raise RefusedError(f"exec body {key} must be a boolean")
    if doc.get("Privileged"):
        raise RefusedError("privileged exec not allowed")
    if doc.get("Detach"):
        # The docker CLI sends `Detach: false`; a detached exec could never be stopped.
        raise RefusedError("detached exec not allowed")
    for key in ("DetachKeys", "WorkingDir"):
        if key in doc and not isinstance(doc[key], str):
            raise RefusedError(f"exec body {key} must be a string")
    if "ConsoleSize" in doc and doc["ConsoleSize"] is not None:
        size = doc["ConsoleSize"]
        if not (isinstance(size, list) and len(size) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535
                        for v in size)):
            raise RefusedError("exec body ConsoleSize must be [rows, columns]")
    user = doc.get("User")
    if user is not None and not isinstance(user, str):
        raise RefusedError("exec body User must be a string")
    if user and user not in rule.users:
        raise RefusedError(f"user {user!r} is not a configured user of this container")
    env = doc.get("Env")
    if env is not None:
        if not _is_str_list(env):
            raise RefusedError("exec body Env must be a list of strings")
        for entry in env:
            name, _, value = entry.partition("=")
            if not _ENV_NAME.fullmatch(name):
                raise RefusedError(f"environment entry {name!r} is not a variable name")
            if name == TOKEN_ENV:
                if not _TOKEN_VALUE.fullmatch(value):
                    raise RefusedError(f"{TOKEN_ENV} must be a hex token")
                continue
            if name == HOME_ENV and value == FALLBACK_HOME:
                continue  # what the dispatcher gives a uid without a home (runtime.userspec)
            if name not in rule.env:
                raise RefusedError(
                    f"environment variable {name} is not configured for this container")
    cmd = doc.get("Cmd")
    if not _is_str_list(cmd) or not cmd:
        raise RefusedError("exec body Cmd must be a non-empty list of strings")
    if any("\x00" in part for part in cmd):
        raise RefusedError("exec body Cmd contains a NUL byte")
    if policy.strict and not rule.any_argv and not _is_kill_cmd(policy, cmd) and not any(
            tuple(cmd[:len(p)]) == p for p in rule.argv_prefixes):
        raise RefusedError(
            "strict mode: Cmd does not start with a configured exec of this container")
    return doc


def check_exec_start(body: bytes) -> dict[str, Any]:
    """Check an exec-start body: attached (not detached), optional Tty and ConsoleSize."""
    if not body.strip():
        return {}
    doc = parse_json_object(body, MAX_START_BODY)
    unknown = set(doc) - StartKeys
    if unknown:
        raise RefusedError(f"exec start key {sorted(unknown)[0]!r} not allowed")
    for key in ("Detach", "Tty"):
        if key in doc and not isinstance(doc[key], bool):
            raise RefusedError(f"exec start {key} must be a boolean")
    if doc.get("Detach"):
        raise RefusedError("detached exec start not allowed (the dispatcher could not stop it)")
    size = doc.get("ConsoleSize")
    if size is not None and not (isinstance(size, list) and len(size) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535 for v in size)):
        raise RefusedError("exec start ConsoleSize must be [rows, columns]")
    return doc


def filter_listing(listing: Any, allowed_ids: Iterable[str]) -> list[Any]:
    """Keep only the entries of a `/containers/json` answer whose Id is an allowed target."""
    allowed = set(allowed_ids)
    if not isinstance(listing, list):
        return []
    return [c for c in listing if isinstance(c, dict) and c.get("Id") in allowed]


_MOUNT_ID = re.compile(r"/containers/([0-9a-f]{64})/(?:hostname|hosts|resolv\.conf)")
_CGROUP_ID = re.compile(r"(?:docker[-/])([0-9a-f]{64})")


def self_container_ids(mountinfo: str, cgroup: str = "", hostname: str = "") -> frozenset[str]:
    """The gate's own container id(s) (full or 12-char prefix), from what the kernel shows it.

    Docker bind-mounts `/var/lib/docker/containers/<id>/{hostname,hosts,resolv.conf}` into every
    container, so the id is in `/proc/self/mountinfo`; cgroup v1 also shows it in
    `/proc/self/cgroup`; and the default hostname is the 12-char id prefix.
    """
    found = set(_MOUNT_ID.findall(mountinfo)) | set(_CGROUP_ID.findall(cgroup))
    if re.fullmatch(r"[0-9a-f]{12}", hostname):
        found.add(hostname)
    return frozenset(found)
