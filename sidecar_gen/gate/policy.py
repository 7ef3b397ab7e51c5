"""The gate's policy: pure functions from a request and a fresh container listing to a decision.

Nothing here does I/O: the endpoints feed it data (the policy from bridge.yaml, the engine's
container listing of this very request) and act on the answer. Which containers are targets
(`resolve`), which reference names one (`lookup`), what an exec may carry (`parse_exec`,
`allow_exec`), how an exec is started or resized (`parse_start`, `resize_size`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sidecar_gen.model import Bridge
from sidecar_gen.runtime.contract import (
    PROJECT_LABEL,
    ROLE_LABEL,
    is_protected,
    labels_of,
    service_members,
)
from sidecar_gen.runtime.killer import KILL_SCRIPT
from sidecar_gen.runtime.names import EXEC_TOKEN_ENV, EXEC_TOKEN_HEX_DIGITS
from sidecar_gen.runtime.userspec import FALLBACK_HOME, HOME_ENV, expand_user

# The dispatcher's cleanup exec is `KILL_CMD + [token]` (sidecar_gen.runtime.killer).
KILL_CMD = ("sh", "-c", KILL_SCRIPT, "sh")

MAX_EXEC_BODY = 64 * 1024
MAX_START_BODY = 4 * 1024

EXEC_KEYS = frozenset({"Detach", "AttachStdin", "AttachStdout", "AttachStderr", "DetachKeys",
                       "Tty", "Env", "Cmd", "Privileged", "User", "WorkingDir", "ConsoleSize"})
START_KEYS = frozenset({"Detach", "Tty", "ConsoleSize"})

EXEC_ID = re.compile(r"[0-9a-f]{64}")
_FULL_ID = EXEC_ID  # container ids have the same shape
_TOKEN_VALUE = re.compile(f"[0-9a-f]{{{EXEC_TOKEN_HEX_DIGITS}}}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class RefusedError(Exception):
    """A request the gate refuses: HTTP `status` (403, or 400 for malformed) and a `reason`."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class NoSuchContainerError(Exception):
    """A configured name, or a list filter's reference, with no target behind it: answered
    like the engine answers a missing container (404), whatever else exists on the host."""

    def __init__(self, ref: str) -> None:
        super().__init__(ref)
        self.ref = ref


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
        """A policy with no targets (used while no usable approved bridge.yaml is loaded)."""
        return cls(rules={})

    def configured_names(self) -> frozenset[str]:
        """Every name bridge.yaml uses for a container: logical names and literal names."""
        return frozenset(self.rules) | frozenset(self.containers.values())


# -- which containers are targets -----------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    """The targets among one container listing, in the engine's order (newest first)."""

    entries: tuple[Mapping[str, Any], ...]  # the listing entries of the targets
    by_id: Mapping[str, TargetRule]  # full container id -> rule
    names: Mapping[str, str]  # every name of a target (no leading '/') -> full id
    # Configured names whose containers in the listing are never targets -> why (the user
    # wrote these names: saying why beats a misleading "no such container").
    excluded: Mapping[str, str] = field(default_factory=dict)
    # What each target was granted through compose-service membership alone: labels cannot
    # change, so for one policy this holds as long as the container exists (names can).
    by_membership: Mapping[str, TargetRule] = field(default_factory=dict)


def names_of(container: Mapping[str, Any]) -> list[str]:
    """The names of a listing entry without their leading '/'."""
    names = container.get("Names")
    if not isinstance(names, list):
        return []
    return [n[1:] if n.startswith("/") else n for n in names if isinstance(n, str)]


def resolve(policy: Policy, listing: Iterable[Mapping[str, Any]], *,
            self_ids: Iterable[str] = (), scope: str | None = None) -> Resolution:
    """The targets of `policy` among `listing` (a `GET /containers/json?all=1` answer).

    A logical name maps through `containers:` to a literal name; otherwise to every member of
    the compose service with that name (`contract.service_members`: one-off containers
    excluded; the dispatcher picks one of the same members); otherwise it is a literal name.
    Never targets: containers labelled with a protected role, the gate's own container
    (`self_ids`, full ids or prefixes) and, when the gate runs in compose project `scope`,
    every container not labelled with that project (literal names included).
    """
    entries = [c for c in listing if isinstance(c.get("Id"), str)]
    selves = tuple(s for s in self_ids if s)
    project = scope or policy.project
    by_name = {name: c for c in entries for name in names_of(c)}

    def never(c: Mapping[str, Any]) -> str | None:
        if any(str(c["Id"]).startswith(s) for s in selves):
            return "it is the gate's own container"
        if is_protected(c):
            return f"it is protected (role {labels_of(c).get(ROLE_LABEL)})"
        project = labels_of(c).get(PROJECT_LABEL)
        if scope is not None and project != scope:
            return f"it is not in compose project {scope}, the gate's own"
        return None

    by_id: dict[str, TargetRule] = {}
    by_membership: dict[str, TargetRule] = {}
    excluded: dict[str, str] = {}

    def grant(c: Mapping[str, Any], rule: TargetRule,
              table: dict[str, TargetRule] | None = None) -> str | None:
        why = never(c)
        if why is None:
            cid = str(c["Id"])
            for into in (by_id, table if table is not None else {}):
                into[cid] = into[cid].merge(rule) if cid in into else rule
        return why

    for logical, rule in policy.rules.items():
        literal = policy.containers.get(logical)
        if literal is None:
            # Members are looked for among all containers, protected ones included: a service
            # whose only members are protected has no targets (it never falls back to a
            # container that happens to carry the service's name).
            members = service_members(entries, logical, project)
            if members:
                reasons = [grant(c, rule, by_membership) for c in members]
                if all(reasons):
                    excluded[logical] = str(reasons[0])
                continue
            literal = logical
        if literal in by_name:
            why = grant(by_name[literal], rule)
            if why:
                excluded[literal] = why
    targets = tuple(c for c in entries if c["Id"] in by_id)
    names = {name: str(c["Id"]) for c in targets for name in names_of(c)}
    return Resolution(entries=targets, by_id=by_id, names=names,
                      excluded={k: v for k, v in excluded.items() if k not in names},
                      by_membership=by_membership)


def lookup(resolution: Resolution, ref: str) -> str | None:
    """The target a container reference names, as Docker resolves references (full id, then
    exact name, then id prefix), among the targets only; None when it names none.

    A prefix shared by two targets is refused as the engine refuses an ambiguous prefix. A
    prefix the engine might resolve differently (another container's name, or an id prefix it
    shares with a non-target) is for the caller to confirm with the engine.
    """
    if ref in resolution.by_id:
        return ref
    if ref in resolution.names:
        return resolution.names[ref]
    if not re.fullmatch(r"[0-9a-f]{1,63}", ref):
        return None
    matches = [cid for cid in resolution.by_id if cid.startswith(ref)]
    if len(matches) > 1:
        raise RefusedError("ambiguous container id prefix")
    return matches[0] if matches else None


def is_full_id(ref: str) -> bool:
    """A 64-character lowercase hex container (or exec) id."""
    return _FULL_ID.fullmatch(ref) is not None


# -- request bodies ---------------------------------------------------------------------------


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


def _is_size(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535
                    for v in value))


@dataclass(frozen=True)
class ExecRequest:
    """An exec-create body that passed the shape checks, and what the decision log shows."""

    doc: dict[str, Any]  # only known keys with checked types: what is forwarded

    @property
    def cmd(self) -> list[str]:
        """The command line."""
        return list(self.doc["Cmd"])

    @property
    def user(self) -> str | None:
        """The requested user (None or empty: the container's default)."""
        user: str | None = self.doc.get("User")
        return user

    @property
    def env_names(self) -> list[str]:
        """The names of the environment entries (their values never leave the gate)."""
        return [entry.partition("=")[0] for entry in self.doc.get("Env") or []]

    def audit(self) -> dict[str, Any]:
        """The decision log's `exec` object: argv, user, variable names, workdir, tty."""
        return {"cmd": self.cmd, "user": self.user or None, "env": self.env_names,
                "workdir": self.doc.get("WorkingDir") or None, "tty": bool(self.doc.get("Tty"))}


def parse_exec(body: bytes) -> ExecRequest:
    """Check an exec-create body's shape (container-independent); raise `RefusedError`."""
    doc = parse_json_object(body, MAX_EXEC_BODY)
    unknown = set(doc) - EXEC_KEYS
    if unknown:
        raise RefusedError(f"exec body key {sorted(unknown)[0]!r} not allowed")
    for key in ("Detach", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "Privileged"):
        if key in doc and not isinstance(doc[key], bool):
            raise RefusedError(f"exec body {key} must be a boolean")
    for key in ("DetachKeys", "WorkingDir"):
        if key in doc and not isinstance(doc[key], str):
            raise RefusedError(f"exec body {key} must be a string")
    if doc.get("ConsoleSize") is not None and not _is_size(doc["ConsoleSize"]):
        raise RefusedError("exec body ConsoleSize must be [rows, columns]")
    if doc.get("User") is not None and not isinstance(doc["User"], str):
        raise RefusedError("exec body User must be a string")
    env = doc.get("Env")
    if env is not None:
        if not _is_str_list(env):
            raise RefusedError("exec body Env must be a list of strings")
        for entry in env:
            if not _ENV_NAME.fullmatch(entry.partition("=")[0]):
                raise RefusedError(
                    f"environment entry {entry.partition('=')[0]!r} is not a variable name")
    cmd = doc.get("Cmd")
    if not _is_str_list(cmd) or not cmd:
        raise RefusedError("exec body Cmd must be a non-empty list of strings")
    if any("\x00" in part for part in cmd):
        raise RefusedError("exec body Cmd contains a NUL byte")
    return ExecRequest(doc)


def _is_kill_cmd(policy: Policy, cmd: list[str]) -> bool:
    n = len(policy.kill_cmd)
    return (len(cmd) == n + 1 and tuple(cmd[:n]) == policy.kill_cmd
            and _TOKEN_VALUE.fullmatch(cmd[n]) is not None)


def allow_exec(policy: Policy, rule: TargetRule, request: ExecRequest) -> None:
    """Check an exec against the target's rule; raise `RefusedError` when it asks for more."""
    doc = request.doc
    if doc.get("Privileged"):
        raise RefusedError("privileged exec not allowed")
    if doc.get("Detach"):
        # The docker CLI sends `Detach: false`; a detached exec could never be stopped.
        raise RefusedError("detached exec not allowed")
    user = request.user
    if user and user not in rule.users:
        raise RefusedError(f"user {user!r} is not a configured user of this container")
    for entry in doc.get("Env") or []:
        name, _, value = entry.partition("=")
        if name == EXEC_TOKEN_ENV:
            if not _TOKEN_VALUE.fullmatch(value):
                raise RefusedError(f"{EXEC_TOKEN_ENV} must be a hex token")
        elif name == HOME_ENV and value == FALLBACK_HOME:
            continue  # what the dispatcher gives a uid without a home (runtime.userspec)
        elif name not in rule.env:
            raise RefusedError(f"environment variable {name} is not configured for this container")
    cmd = request.cmd
    if policy.strict and not rule.any_argv and not _is_kill_cmd(policy, cmd) and not any(
            tuple(cmd[:len(p)]) == p for p in rule.argv_prefixes):
        raise RefusedError(
            "strict mode: Cmd does not start with a configured exec of this container")


def parse_start(body: bytes) -> dict[str, Any]:
    """Check an exec-start body: attached (not detached), optional Tty and ConsoleSize."""
    if not body.strip():
        return {}
    doc = parse_json_object(body, MAX_START_BODY)
    unknown = set(doc) - START_KEYS
    if unknown:
        raise RefusedError(f"exec start key {sorted(unknown)[0]!r} not allowed")
    for key in ("Detach", "Tty"):
        if key in doc and not isinstance(doc[key], bool):
            raise RefusedError(f"exec start {key} must be a boolean")
    if doc.get("Detach"):
        raise RefusedError("detached exec start not allowed (the dispatcher could not stop it)")
    if doc.get("ConsoleSize") is not None and not _is_size(doc["ConsoleSize"]):
        raise RefusedError("exec start ConsoleSize must be [rows, columns]")
    return doc


def resize_size(query: Mapping[str, str]) -> dict[str, int]:
    """The `h` and `w` of an exec resize: exactly these two, integers 0-65535."""
    if set(query) != {"h", "w"}:
        raise RefusedError("resize takes exactly the query parameters h and w")
    size = {}
    for key in ("h", "w"):
        value = query[key]
        if not value.isdigit() or len(value) > 5 or int(value) > 65535:
            raise RefusedError(f"resize parameter {key!r} must be an integer 0-65535")
        size[key] = int(value)
    return size


# -- the gate's own container -------------------------------------------------------------------

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
