"""Doctor checks of the running stack, through the Engine API (the docker SDK on the host).

Containers are found by their compose labels in the project, and routed commands are resolved
by the gate's rule (`contract.service_members`, then a literal name that belongs to no other
compose project). A routed program is looked for from the outside (`peek.find_program`):
nothing runs in a target, which the agent controls. The ids Claude runs with are read from the
claude container's /etc/passwd through the engine. What only the inside can tell (the gate's
answer, the firewall, Claude Code itself) is asked with an exec in the claude container, by
absolute path, within a time limit; what it prints is only ever shown quoted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sidecar_gen.compose.project import normalize_project_name
from sidecar_gen.doctor import DOCTOR_TIMEOUT, DoctorReport, Status, peek
from sidecar_gen.doctor.host import HostContext
from sidecar_gen.doctor.peek import Deadline, PeekError
from sidecar_gen.resources import program_text
from sidecar_gen.runtime import contract
from sidecar_gen.runtime.escape import quote
from sidecar_gen.runtime.names import (
    AGENT_USER,
    CLAUDE_BINARY,
    CLAUDE_SERVICE,
    CONFIG_NAME,
    DOMAINS_NAME,
    GATE_SERVICE,
    POLICY_DIR,
    POLICY_DIR_ENV,
)

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

    from sidecar_gen.runtime.contract import Route

EXEC_TIMEOUT = 20  # seconds, for each exec in the claude container (enforced from the host)
PYTHON = "/usr/bin/python3"
SIDECAR = "/opt/sidecar/bin/sidecar"
OUT_OF_TIME = f"not checked: doctor's time limit ({DOCTOR_TIMEOUT:.0f} s) ran out"
# Asked as root inside the claude container: the gate's policy and the policy files claude
# reads (a module of this package, sent as program text: see its docstring).
POLICY_PROBE = "sidecar_gen.doctor.policyprobe"


def _client_of(container: Container) -> DockerClient:
    """The client a container was listed with (the SDK sets it on every model it makes)."""
    if container.client is None:
        raise PeekError("the container came without its engine client")
    return container.client


def _exec(report: DoctorReport, container: Container, argv: list[str],
          user: str) -> peek.ExecResult:
    """Run argv (an absolute path first) in the claude container within EXEC_TIMEOUT and the
    doctor's deadline; an engine failure is an exit code of None with the reason as stderr."""
    try:
        return peek.run(_client_of(container), str(container.id), argv, report.deadline,
                        user=user, cap=EXEC_TIMEOUT)
    except PeekError as exc:
        return peek.ExecResult(None, "", str(exc))


def _said(result: peek.ExecResult) -> str:
    """What an exec printed, for a message: quoted, escaped, short; or that it hung."""
    if result.timed_out:
        return f"no answer within {result.seconds:.0f} s (it was left behind)"
    text = (result.err or result.out).strip()
    return f"exit {result.code}, it said {quote(text, 200)}" if text else f"exit {result.code}"


def _project_name(report: DoctorReport, context: HostContext) -> str:
    if context.model is not None and context.model.name:
        return context.model.name
    env = report.target.environ()
    return (report.target.project or env.get("COMPOSE_PROJECT_NAME")
            or normalize_project_name(report.target.directory.resolve().name))


def _service_container(client: DockerClient, project: str, role: str) -> Container | None:
    found = client.containers.list(all=True, filters={"label": [
        f"{contract.PROJECT_LABEL}={project}", f"{contract.ROLE_LABEL}={role}"]})
    running = [c for c in found if c.status == "running"]
    chosen = running or found
    return chosen[0] if chosen else None


def _state(container: Container) -> str:
    health = (container.attrs.get("State") or {}).get("Health") or {}
    status = health.get("Status")
    return f"{container.status}{f', {status}' if status else ''}"


def _services(report: DoctorReport, client: DockerClient, project: str) -> dict[str, Container]:
    running: dict[str, Container] = {}
    for role, service in ((contract.ROLE_GATE, GATE_SERVICE),
                          (contract.ROLE_CLAUDE, CLAUDE_SERVICE)):
        container = _service_container(client, project, role)
        if container is None:
            report.add(service, Status.FAIL, f"no {service} container in compose project "
                       f"{project}", "`sidecar up`")
        elif container.status != "running" or "unhealthy" in _state(container):
            report.add(service, Status.FAIL, f"{container.name} is {_state(container)}",
                       f"`docker compose logs {service}`, then `sidecar up`")
        else:
            report.add(service, Status.OK, f"{container.name} is {_state(container)}")
            running[role] = container
    return running


def _resolve(listing: list[Mapping[str, Any]], name: str,
             project: str) -> tuple[Mapping[str, Any] | None, str]:
    """The container a route's `container` names, by the gate's rule; (container, problem)."""
    member = contract.pick_member(contract.service_members(listing, name, project))
    if member is not None:
        return member, ""
    for container in listing:
        if f"/{name}" in (container.get("Names") or ()) or container.get("Id") == name:
            owner = contract.labels_of(container).get(contract.PROJECT_LABEL)
            if owner is not None and owner != project:
                return None, (f"container {name} belongs to compose project {owner}, not "
                              f"{project}: the gate never runs commands there")
            return container, ""
    return None, f"no service or container {name} in compose project {project}"


def _commands(report: DoctorReport, client: DockerClient, context: HostContext,
              project: str) -> None:
    bridge = context.bridge
    if bridge is None:
        report.add("commands", Status.SKIP, "no valid bridge.yaml (see render, approval)")
        return
    listing = client.api.containers(all=True)
    for name, route in sorted(bridge.commands.items()):
        check = f"command {name}"
        if report.deadline.expired:
            report.add(check, Status.SKIP, OUT_OF_TIME)
            continue
        wanted = bridge.resolve_container(route.container)
        container, problem = _resolve(listing, wanted, project)
        if container is None:
            report.add(check, Status.FAIL, problem, "start it (`sidecar up`), or fix "
                       "`container:` in bridge.yaml")
            continue
        label = (container.get("Names") or ["?"])[0].lstrip("/")
        if contract.is_protected(container):
            report.add(check, Status.FAIL, f"{label} is a sidecar container: never a target",
                       "route the command to one of your services")
            continue
        if container.get("State") != "running":
            report.add(check, Status.FAIL, f"{label} is {container.get('State')}",
                       f"`sidecar up` (or `docker start {label}`)")
            continue
        program = route.argv[0]
        try:
            found = _find(client, container["Id"], route, program, report.deadline)
        except PeekError as exc:
            report.add(check, Status.WARN, f"{label}: cannot check for {program}: {exc}")
            continue
        if found is not None:
            report.add(check, Status.OK, f"{label}: {program} is {quote(found)}")
        else:
            report.add(check, Status.FAIL, f"{label}: {program} not found",
                       f"install {program} in that image, or fix `exec:` in bridge.yaml")


def _find(client: DockerClient, container_id: str, route: Route, program: str,
          deadline: Deadline) -> str | None:
    """Where the exec of a route would find its program, looked up from the outside."""
    try:
        config = client.api.inspect_container(container_id).get("Config") or {}
    except Exception as exc:
        raise PeekError(f"the engine did not answer ({type(exc).__name__})") from None
    env = dict(entry.split("=", 1) for entry in route.env if "=" in entry)
    workdir = route.workdir or str(config.get("WorkingDir") or "/")
    return peek.find_program(client, container_id, program,
                             search_path=peek.container_path(config, env), workdir=workdir,
                             deadline=deadline)


def _routed_limits(report: DoctorReport, client: DockerClient, context: HostContext,
                   project: str) -> None:
    """Warn while a container commands route to has no memory or process limit: what the
    agent runs there could exhaust the host (`sidecar.limits.routed` sets one)."""
    bridge = context.bridge
    if bridge is None:
        report.add("routed limits", Status.SKIP, "no valid bridge.yaml (see render, approval)")
        return
    listing = client.api.containers(all=True)
    wanted = {bridge.resolve_container(r.container) for r in bridge.commands.values()}
    if bridge.default_container:
        wanted.add(bridge.resolve_container(bridge.default_container))
    bare: dict[str, list[str]] = {}
    for name in sorted(wanted):
        container, _problem = _resolve(listing, name, project)
        if container is None or contract.is_protected(container):
            continue  # the commands check says why
        host = client.api.inspect_container(container["Id"]).get("HostConfig") or {}
        missing = [what for what, key in (("memory", "Memory"), ("pids", "PidsLimit"))
                   if not isinstance(host.get(key), int) or host[key] <= 0]
        if missing:
            label = (container.get("Names") or ["?"])[0].lstrip("/")
            bare[label] = missing
    if bare:
        which = ", ".join(f"{label} ({' and '.join(what)})" for label, what in bare.items())
        report.add("routed limits", Status.WARN, f"no limit in {which}: what the agent runs "
                   "there can use all of the host's memory and processes",
                   "set sidecar.limits.routed in bridge.yaml (e.g. {memory: 2g, pids: 512}), "
                   "then `sidecar trust` and `sidecar up`")
    else:
        report.add("routed limits", Status.OK, "every container commands route to has a "
                   "memory and a process limit")


def _probe(report: DoctorReport, claude: Container, context: HostContext) -> None:
    ran = _exec(report, claude, [PYTHON, "-I", "-c", program_text(POLICY_PROBE), POLICY_DIR_ENV,
                                 POLICY_DIR, CONFIG_NAME, DOMAINS_NAME], user="root")
    try:
        found = json.loads(ran.out)
        if not isinstance(found, dict):
            raise ValueError("not an object")
    except ValueError:
        report.add("gate policy", Status.FAIL, f"cannot ask the gate from claude ({_said(ran)})",
                   "`docker compose logs claude`")
        return
    policy = context.approval.policy if context.approval else {}
    want = {name: hashlib.sha256(text.encode("utf-8")).hexdigest()
            for name, text in policy.items()}
    header = found.get("policy")
    fix = "`sidecar up` (it fills the policy volume and restarts the gate)"
    if "error" in found:
        report.add("gate policy", Status.FAIL, f"the gate does not answer: "
                   f"{quote(str(found['error']), 200)}", "`docker compose logs sidecar-gate`")
    elif not want:
        report.add("gate policy", Status.SKIP, "nothing approved to compare with")
    elif header is None:
        report.add("gate policy", Status.FAIL, "the gate does not report its policy (no "
                   "X-Sidecar-Policy header: an image older than this sidecar?)",
                   "update the image, then `sidecar up`")
    elif header == "none":
        report.add("gate policy", Status.FAIL, "the gate has no policy (it refuses everything)",
                   fix)
    elif header == f"sha256:{want.get(CONFIG_NAME)}":
        report.add("gate policy", Status.OK, "the gate runs the approved bridge.yaml")
    else:
        report.add("gate policy", Status.FAIL, f"the gate runs another policy "
                   f"({quote(str(header), 100)})", fix)
    if want:
        differ = [n for n in (CONFIG_NAME, DOMAINS_NAME) if found.get(n) != want.get(n)]
        if differ:
            report.add("policy volume", Status.FAIL, f"{POLICY_DIR} in claude does not hold "
                       f"the approved {', '.join(differ)}", fix)
        else:
            report.add("policy volume", Status.OK, f"{POLICY_DIR} holds the approved policy")


def _firewall(report: DoctorReport, claude: Container) -> None:
    ran = _exec(report, claude, [SIDECAR, "firewall", "status", "--json"], user="root")
    try:
        state = json.loads(ran.out)
        name, detail = str(state.get("state", "unknown")), str(state.get("detail", ""))
    except (ValueError, AttributeError):
        report.add("firewall", Status.FAIL, f"cannot read its state ({_said(ran)})",
                   "`docker compose logs claude`")
        return
    said = f"its status says {quote(detail, 300)}"
    if name == "enforcing":
        report.add("firewall", Status.OK, f"enforcing; {said}")
    elif name == "disabled":
        report.add("firewall", Status.WARN, f"disabled; {said}",
                   "sidecar.firewall.enabled: true in bridge.yaml to filter egress")
    else:
        report.add("firewall", Status.FAIL, f"not enforcing (state {quote(name, 40)}); {said}",
                   "`docker compose logs claude` says why; fix it, then `sidecar up`")


def _claude_ids(report: DoctorReport, claude: Container) -> tuple[str, str] | None:
    """The uid and gid of the user claude, from the container's /etc/passwd (root's file
    there), read through the engine: nothing runs for it."""
    try:
        data = peek.read_file(_client_of(claude), str(claude.id), "/etc/passwd",
                              report.deadline)
    except PeekError:
        return None
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == "claude" and fields[2].isdigit() \
                and fields[3].isdigit():
            return fields[2], fields[3]
    return None


def _ids(report: DoctorReport, claude: Container) -> None:
    ids = _claude_ids(report, claude)
    if ids is None:
        report.add("puid", Status.FAIL, "cannot read the ids of the user claude",
                   "`docker compose logs claude`")
        return
    info = os.stat(report.target.directory)
    owner = (str(info.st_uid), str(info.st_gid))
    if ids == owner:
        report.add("puid", Status.OK, f"Claude runs as {ids[0]}:{ids[1]}, the project "
                   "folder's owner")
    elif owner[0] == "0":
        report.add("puid", Status.WARN, f"Claude runs as {ids[0]}:{ids[1]}; the project folder "
                   "belongs to root, so Claude may be unable to write it",
                   "give the folder to your user (chown), then set PUID/PGID to its ids")
    else:
        report.add("puid", Status.FAIL, f"Claude runs as {ids[0]}:{ids[1]} but the project "
                   f"folder belongs to {owner[0]}:{owner[1]}: files it writes are not yours",
                   f"set PUID={owner[0]} PGID={owner[1]} (shell or .env), `sidecar trust`, "
                   "`sidecar up`")


def _claude_code(report: DoctorReport, claude: Container) -> None:
    # As the agent's user, as Claude Code runs: its output is the agent's to shape (it owns
    # the config folder and the process), so it is only shown quoted.
    ran = _exec(report, claude, [CLAUDE_BINARY, "--version"], user=AGENT_USER)
    first = (ran.out.strip().splitlines() or [""])[0]
    if ran.code == 0 and first:
        report.add("claude code", Status.OK, f"Claude Code reports {quote(first, 200)}")
        return
    image = claude.image
    labels = (image.labels if image is not None else None) or {}
    install = labels.get("dev.claude-sidecar.claude-install", "?")
    name = "?" if image is None else image.tags[0] if image.tags else image.short_id
    missing = ran.code in (126, 127) or "no such file" in (ran.err + ran.out).lower()
    why = "not installed" if missing and not ran.timed_out else \
        f"`claude --version` failed ({_said(ran)})"
    report.add("claude code", Status.FAIL, f"{why} in image "
               f"{name} "
               f"(built with CLAUDE_INSTALL={install})",
               "use an image built with CLAUDE_INSTALL=native or npm")


def run_stack_checks(report: DoctorReport, context: HostContext) -> None:
    """Services, routed commands, the gate's policy, firewall, ids, Claude Code."""
    client = context.client
    names = (GATE_SERVICE, CLAUDE_SERVICE, "commands", "routed limits", "gate policy", "firewall",
             "puid", "claude code")
    if client is None:
        for name in names:
            report.add(name, Status.SKIP, "needs the engine (see engine)")
        return
    project = _project_name(report, context)
    report.project = project
    running = _services(report, client, project)
    _commands(report, client, context, project)
    _routed_limits(report, client, context, project)
    claude = running.get(contract.ROLE_CLAUDE)
    if claude is None:
        for name in names[4:]:
            report.add(name, Status.SKIP, "needs a running claude container (see claude)")
        return
    steps: tuple[tuple[str, Callable[[], None]], ...] = (
        ("gate policy", lambda: _probe(report, claude, context)),
        ("firewall", lambda: _firewall(report, claude)),
        ("puid", lambda: _ids(report, claude)),
        ("claude code", lambda: _claude_code(report, claude)))
    for name, step in steps:
        if report.deadline.expired:
            report.add(name, Status.SKIP, OUT_OF_TIME)
        else:
            step()
