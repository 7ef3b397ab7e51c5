"""A session's compose model and policy, derived from the worktree's: pure functions, no I/O.

Input is what `docker compose -p <project>-NAME config --format json` resolves in the session's
worktree (interpolation, `.env`, override files, `include:` of the generated stack, `extends`;
every relative path already points into the worktree). `plan_model` keeps the services a session
needs (its own claude and gate, the services the routes name and everything they depend on) and
makes the copy collide with nothing: no `container_name`, published ports on free host ports,
named volumes and networks that are the session's own, no fixed addresses. The gate and Claude
read the session's policy from a read-only folder outside the worktree (`POLICY_TARGET`).

`derive_policy` rewrites bridge.yaml for the session: `sidecar.project` becomes the session's
compose project and literal container names of the source project become the session's, so the
dispatcher and the gate resolve every route to the session's own containers. It only narrows:
no route gains a container it did not have.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.comments import CommentedMap

from sidecar_gen.model import Bridge
from sidecar_gen.runtime.contract import ROLE_CLAUDE, ROLE_GATE, ROLE_LABEL
from sidecar_gen.runtime.names import (
    BRIDGE_CONFIG_ENV,
    CONFIG_DIR_ENV,
    GATE_CONFIG_DIR,
    POLICY_BRIDGE,
    POLICY_DIR_ENV,
)
from sidecar_gen.runtime.names import POLICY_DIR as POLICY_TARGET
from sidecar_gen.session.store import SessionError
from sidecar_gen.yamlio import load_text, make_yaml

SESSION_LABEL = "dev.claude-sidecar.session"
_NETWORK_ATTACHMENT_DROPS = ("ipv4_address", "ipv6_address", "link_local_ips", "mac_address")
_NETWORK_KEEPS = ("driver", "internal", "attachable", "labels", "enable_ipv6")


@dataclass(frozen=True)
class Names:
    """How the source project names its containers, to map literal names to services."""

    project: str
    services: frozenset[str]
    container_names: Mapping[str, str]  # container_name -> service

    @classmethod
    def of(cls, project: str, *models: Mapping[str, Any]) -> Names:
        """The services and `container_name`s of the models (source and worktree)."""
        services: set[str] = set()
        fixed: dict[str, str] = {}
        for model in models:
            for svc, spec in _services(model).items():
                services.add(svc)
                if spec.get("container_name"):
                    fixed[str(spec["container_name"])] = svc
        return cls(project, frozenset(services), fixed)

    def service_of(self, literal: str) -> tuple[str, int] | None:
        """The (service, number) a literal container name of the source project stands for:
        a `container_name`, or compose's `<project>-<service>-<n>` (`_` in v1 style)."""
        if literal in self.container_names:
            return self.container_names[literal], 1
        for sep in "-_":
            prefix = f"{self.project}{sep}"
            if not literal.startswith(prefix):
                continue
            rest, _, number = literal[len(prefix):].rpartition(sep)
            if rest in self.services and number.isdigit():
                return rest, int(number)
        return None


def _services(model: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    services = model.get("services")
    if not isinstance(services, dict):
        return {}
    return {str(k): v for k, v in services.items() if isinstance(v, dict)}


def _role(spec: Mapping[str, Any]) -> str | None:
    labels = spec.get("labels")
    if isinstance(labels, dict):
        value = labels.get(ROLE_LABEL)
        return str(value) if value is not None else None
    if isinstance(labels, list):  # compose normalizes to a mapping; a list is still legal
        for item in labels:
            key, _, value = str(item).partition("=")
            if key == ROLE_LABEL:
                return value
    return None


@dataclass(frozen=True)
class RouteTargets:
    """The services the routes of bridge.yaml run in, and what could not be placed."""

    services: frozenset[str]
    outside: tuple[str, ...]  # routed containers that are no service of the compose project


def route_targets(bridge: Bridge, model: Mapping[str, Any], names: Names) -> RouteTargets:
    """Which compose services the routes (and `default_container`) need, as the dispatcher
    resolves them: `containers:` to a literal name, else a compose service, else a literal."""
    services = _services(model)
    wanted: set[str] = set()
    outside: list[str] = []
    logicals = {route.container for route in bridge.commands.values()}
    if bridge.default_container:
        logicals.add(bridge.default_container)
    for logical in sorted(logicals):
        if logical not in bridge.containers and logical in services:
            wanted.add(logical)
            continue
        literal = bridge.containers.get(logical, logical)
        found = names.service_of(literal)
        if found and found[0] in services:
            wanted.add(found[0])
        else:
            outside.append(literal)
    return RouteTargets(frozenset(wanted), tuple(outside))


def derive_policy(text: str, source: str, *, names: Names, project: str,
                  services: Iterable[str]) -> str:
    """bridge.yaml for a session whose compose project is `project`.

    `sidecar.project` becomes `project`; a literal container name of the source project (in
    `containers:`, a command's `container` or `default_container`) becomes the session's own
    container. Everything else, comments included, is kept.
    """
    loaded = load_text(text, source)
    if not isinstance(loaded.data, CommentedMap):
        raise SessionError(f"{source}: not a bridge.yaml mapping")
    data = loaded.data
    known = set(services)
    containers = data.get("containers")
    logical = set(containers) if isinstance(containers, dict) else set()
    if isinstance(containers, dict):
        for key, literal in list(containers.items()):
            found = names.service_of(str(literal))
            if found:
                containers[key] = f"{project}-{found[0]}-{found[1]}"

    def to_service(value: Any) -> Any:
        if not isinstance(value, str) or value in logical or value in known:
            return value
        found = names.service_of(value)
        return found[0] if found else value

    commands = data.get("commands")
    if isinstance(commands, dict):
        for spec in commands.values():
            if isinstance(spec, dict) and "container" in spec:
                spec["container"] = to_service(spec["container"])
    if "default_container" in data:
        data["default_container"] = to_service(data["default_container"])
    side = data.get("sidecar")
    if not isinstance(side, dict):
        side = CommentedMap()
        data["sidecar"] = side
    side["project"] = project
    out = io.StringIO()
    make_yaml().dump(data, out)
    header = (f"# The policy of session compose project {project}: written by `sidecar session`\n"
              f"# from {source}, with the project and container names of this session.\n")
    return header + out.getvalue()


@dataclass(frozen=True)
class SessionPlan:
    """The compose model a session starts, and what was changed to make it one."""

    model: dict[str, Any]
    services: tuple[str, ...]  # the services it runs
    claude: str
    gate: str
    volumes: Mapping[str, str]  # volume key -> the session's volume name
    notes: tuple[str, ...] = field(default_factory=tuple)


def _closure(services: Mapping[str, dict[str, Any]], roots: Iterable[str]) -> set[str]:
    """`roots` and every service they depend on, however compose expresses it."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in services:
            continue
        seen.add(name)
        spec = services[name]
        depends = spec.get("depends_on") or {}
        todo.extend(str(d) for d in depends)
        mode = str(spec.get("network_mode") or "")
        if mode.startswith("service:"):
            todo.append(mode.removeprefix("service:"))
        for item in spec.get("volumes_from") or []:
            ref = str(item).split(":")[0]
            if ref != "container":
                todo.append(ref)
        todo.extend(str(link).split(":")[0] for link in spec.get("links") or [])
    return seen


def _session_service(name: str, spec: dict[str, Any], session_name: str,
                     notes: list[str]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    spec.pop("container_name", None)
    spec.pop("profiles", None)  # the session names its services; profiles would hide them
    if str(spec.get("network_mode") or "") == "host":
        raise SessionError(f"service {name} uses network_mode: host: a second copy would "
                           "collide with the first on every port it opens")
    for port in spec.get("ports") or []:
        if isinstance(port, dict) and port.pop("published", None) not in (None, ""):
            notes.append(f"{name}: port {port.get('target')} is published on a free host port")
    if spec.pop("external_links", None):
        notes.append(f"{name}: external_links dropped (they name containers of other projects)")
    for item in spec.get("volumes_from") or []:
        if str(item).startswith("container:"):
            notes.append(f"{name}: volumes_from {item} is shared with that container")
    networks = spec.get("networks")
    if isinstance(networks, dict):
        for net, attach in networks.items():
            if isinstance(attach, dict):
                for key in _NETWORK_ATTACHMENT_DROPS:
                    if attach.pop(key, None) is not None:
                        notes.append(f"{name}: fixed {key} on network {net} dropped")
    labels = spec.get("labels")
    spec["labels"] = {**(labels if isinstance(labels, dict) else {}), SESSION_LABEL: session_name}
    return spec


def _with_policy_mount(spec: dict[str, Any], policy_dir: str, *, gate: bool) -> None:
    mounts = []
    for mount in spec.get("volumes") or []:
        target = mount.get("target") if isinstance(mount, dict) else None
        if target == POLICY_TARGET:
            continue  # the session's policy replaces any other source of it
        if gate and target == GATE_CONFIG_DIR:
            # The gate compares this copy with the policy it runs: give it the session's own.
            own = {k: v for k, v in mount.items() if k != "volume"}
            mounts.append({**own, "type": "bind", "source": policy_dir, "read_only": True})
        else:
            mounts.append(mount)
    mounts.append({"type": "bind", "source": policy_dir, "target": POLICY_TARGET,
                   "read_only": True})
    spec["volumes"] = mounts


def _gate_config_args(spec: dict[str, Any], gate: str) -> None:
    found = False
    for key in ("entrypoint", "command"):
        argv = spec.get(key)
        if not isinstance(argv, list):
            continue
        out: list[Any] = []
        skip = False
        for arg in argv:
            if skip:
                skip = False
                continue
            if arg == "--config":
                skip, found = True, True
                out.append(f"--config={POLICY_BRIDGE}")
            elif isinstance(arg, str) and arg.startswith("--config="):
                found = True
                out.append(f"--config={POLICY_BRIDGE}")
            else:
                out.append(arg)
        spec[key] = out
    if not found:
        raise SessionError(f"service {gate} (the gate) has no --config argument to point at "
                           "the session's policy: render the stack with `sidecar render`")


def _own_volumes(model: Mapping[str, Any], services: Mapping[str, dict[str, Any]],
                 session: str, notes: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The named volumes the services mount, each the session's own local volume."""
    used = {str(m["source"]) for spec in services.values() for m in spec.get("volumes") or []
            if isinstance(m, dict) and m.get("type") == "volume" and m.get("source")}
    volumes: dict[str, Any] = {}
    names: dict[str, str] = {}
    for key, raw in (model.get("volumes") or {}).items():
        if key not in used:
            continue
        spec = raw if isinstance(raw, dict) else {}
        own = f"{session}_{key}"
        # External, fixed-name or driver-backed volumes (a host folder, remote storage) would
        # be shared with the source project: the session gets a plain volume of its own.
        if spec.get("external") or spec.get("driver_opts") or spec.get("name", own) != own \
                or (spec.get("driver") or "local") != "local":
            notes.append(f"volume {key}: the session has its own local volume {own} "
                         f"(not {spec.get('name', key)})")
        labels = spec.get("labels")
        volumes[key] = {"name": own, **({"labels": labels} if labels else {})}
        names[key] = own
    return volumes, names


def _own_networks(model: Mapping[str, Any], services: Mapping[str, dict[str, Any]],
                  session: str, notes: list[str]) -> dict[str, Any]:
    """The networks the services join, each the session's own, without a fixed subnet."""
    used = {str(n) for spec in services.values() for n in spec.get("networks") or {}}
    networks: dict[str, Any] = {}
    for key, raw in (model.get("networks") or {}).items():
        if key not in used:
            continue
        spec = raw if isinstance(raw, dict) else {}
        own = f"{session}_{key}"
        ipam = spec.get("ipam")
        if spec.get("external") or (isinstance(ipam, dict) and ipam.get("config")) \
                or spec.get("name", own) != own:
            notes.append(f"network {key}: the session has its own network {own} "
                         f"(not {spec.get('name', key)}, no fixed subnet)")
        networks[key] = {"name": own, **{k: spec[k] for k in _NETWORK_KEEPS if k in spec}}
    return networks


def _protect(spec: dict[str, Any], path: str) -> None:
    """Mount host file `path` read-only wherever a bind mount of the service shows it."""
    extra = []
    for mount in spec.get("volumes") or []:
        if not isinstance(mount, dict) or mount.get("type") != "bind":
            continue
        source = str(mount.get("source") or "")
        if source and (path == source or path.startswith(source.rstrip("/") + "/")):
            inside = path[len(source.rstrip("/")):]
            extra.append({"type": "bind", "source": path, "read_only": True,
                          "target": str(mount["target"]).rstrip("/") + inside})
    if extra:
        spec["volumes"] = [*spec["volumes"], *extra]


def plan_model(model: Mapping[str, Any], *, session: str, name: str,
               needed: Iterable[str], policy_dir: str, git_file: str | None = None,
               git_common_dir: str | None = None) -> SessionPlan:
    """The model session `name` (compose project `session`) starts.

    `model` is the worktree's resolved model (`docker compose -p <session> config`); `needed`
    are the services the routes run in. The session's claude and gate are found by their role
    labels; `policy_dir` is the host folder holding the session's bridge.yaml and allowlist.

    `git_file` is the worktree's `.git` file: it says where the worktree's git directory is,
    and git on the host believes it, so every container that sees it gets it read-only (a
    rewritten one would make the user's next `git status` there run the agent's program).
    `git_common_dir`, the repository's git database, is mounted read-only into Claude's
    container at its own path, so git works there for reading (status, diff, log).
    """
    services = _services(model)
    roles = {svc: _role(spec) for svc, spec in services.items()}
    claude = next((s for s, r in roles.items() if r == ROLE_CLAUDE), None)
    gate = next((s for s, r in roles.items() if r == ROLE_GATE), None)
    if claude is None or gate is None:
        raise SessionError(
            "the worktree's compose project has no Claude stack (no services labelled "
            f"{ROLE_LABEL}=claude and =gate): render it with `sidecar render` and commit "
            "the include: line and .sidecar/, or pass --from a commit that has them")
    keep = _closure(services, [claude, gate, *needed])
    notes: list[str] = []
    out_services = {svc: _session_service(svc, services[svc], name, notes)
                    for svc in sorted(keep)}
    _with_policy_mount(out_services[gate], policy_dir, gate=True)
    _gate_config_args(out_services[gate], gate)
    _with_policy_mount(out_services[claude], policy_dir, gate=False)
    if git_file:
        for spec in out_services.values():
            _protect(spec, git_file)
    if git_common_dir:
        out_services[claude]["volumes"].append(
            {"type": "bind", "source": git_common_dir, "target": git_common_dir,
             "read_only": True})
    env = out_services[claude].get("environment")
    out_services[claude]["environment"] = {
        **(env if isinstance(env, dict) else {}),
        BRIDGE_CONFIG_ENV: POLICY_BRIDGE, POLICY_DIR_ENV: POLICY_TARGET,
        # The entrypoint reads the allowlist and installs the wrappers from here.
        CONFIG_DIR_ENV: POLICY_TARGET,
    }
    volumes, volume_names = _own_volumes(model, out_services, session, notes)
    networks = _own_networks(model, out_services, session, notes)
    result: dict[str, Any] = {"name": session, "services": out_services}
    if networks:
        result["networks"] = networks
    if volumes:
        result["volumes"] = volumes
    for kind in ("secrets", "configs"):
        refs = {str(item.get("source") if isinstance(item, dict) else item)
                for spec in out_services.values() for item in spec.get(kind) or []}
        kept = {k: v for k, v in (model.get(kind) or {}).items() if k in refs}
        if kept:
            result[kind] = copy.deepcopy(kept)
    return SessionPlan(model=result, services=tuple(sorted(keep)), claude=claude, gate=gate,
                       volumes=volume_names, notes=tuple(dict.fromkeys(notes)))
