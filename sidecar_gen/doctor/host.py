"""Doctor checks on the host: engine, compose, the include line, render, the approval."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sidecar_gen.compose.cli import ResolvedModel, compose_version
from sidecar_gen.config import bridge_from_text, load_bridge
from sidecar_gen.doctor import ENGINE_TIMEOUT, DoctorReport, Status
from sidecar_gen.errors import SidecarError
from sidecar_gen.fsutil import read_text_file
from sidecar_gen.model import Bridge
from sidecar_gen.runtime.names import CONFIG_DIR, CONFIG_NAME, DOMAINS_NAME
from sidecar_gen.trust.record import Approval

if TYPE_CHECKING:
    from docker import DockerClient

    from sidecar_gen.host.engine import EngineIdentity
    from sidecar_gen.session.store import SessionRecord

MIN_COMPOSE = (2, 20)  # top-level `include:`


@dataclass
class HostContext:
    """What the host checks found, for the stack checks."""

    client: DockerClient | None = None
    identity: EngineIdentity | None = None
    model: ResolvedModel | None = None
    approval: Approval | None = None
    bridge: Bridge | None = None  # the approved policy, else the workspace file
    bridge_source: str = ""


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _engine(report: DoctorReport, context: HostContext) -> None:
    from docker.errors import DockerException

    from sidecar_gen.doctor.podman import check_podman
    from sidecar_gen.host.engine import connect, engine_identity

    try:
        client = connect(timeout=ENGINE_TIMEOUT)
        identity = engine_identity(client)
    except SidecarError as exc:
        report.add("engine", Status.FAIL, exc.message,
                   "start Docker or Podman's API service, or set DOCKER_HOST")
        return
    except DockerException as exc:  # it answered the ping, then not /version or /info
        report.add("engine", Status.FAIL, f"the engine did not answer /version or /info: {exc}",
                   "check the engine's log")
        return
    context.client = client
    context.identity = identity
    report.add("engine", Status.OK, identity.describe())
    check_podman(report, identity)


def _compose(report: DoctorReport) -> bool:
    version = compose_version(report.target)
    if version is None:
        report.add("compose", Status.FAIL, "Docker Compose v2 is not installed",
                   "install the docker compose plugin (v2.20 or newer)")
        return False
    if _version_tuple(version)[:2] < MIN_COMPOSE:
        report.add("compose", Status.FAIL, f"Docker Compose {version} is too old for `include:`",
                   "upgrade Docker Compose to 2.20 or newer")
        return False
    report.add("compose", Status.OK, f"Docker Compose {version}")
    return True


def _render(report: DoctorReport) -> None:
    from sidecar_gen.fileplan import FileStatus
    from sidecar_gen.render import plan_render

    directory = report.target.directory
    try:
        plan = plan_render(directory)
    except SidecarError as exc:
        report.add("include", Status.SKIP, "cannot plan the render (see render)")
        report.add("render", Status.FAIL, exc.message, "fix the file it names, then "
                   "`sidecar render`")
        return
    sidecar_dir = directory / CONFIG_DIR
    project_file = [c for c in plan.changes if c.path.parent != sidecar_dir]
    generated = [c for c in plan.changes if c.path.parent == sidecar_dir]
    for change in project_file:
        if change.status is FileStatus.OK:
            report.add("include", Status.OK, f"{change.path.name} includes .sidecar/compose.yml")
        else:
            report.add("include", Status.FAIL,
                       f"{change.path.name} does not include .sidecar/compose.yml",
                       "`sidecar render` adds the include: line")
    stale = [c for c in generated if c.status is not FileStatus.OK]
    if not stale:
        report.add("render", Status.OK, "the generated files match bridge.yaml")
        return
    names = ", ".join(f"{c.path.relative_to(directory)} ({c.status}"
                      f"{': ' + c.reason if c.reason else ''})" for c in stale)
    report.add("render", Status.FAIL, f"not up to date with bridge.yaml: {names}",
               "`sidecar render` (then `sidecar trust`)")


def _approval(report: DoctorReport, context: HostContext) -> None:
    from sidecar_gen.trust.actions import check_project

    try:
        check = check_project(report.target, render_notes=False)  # `render` is its own check
    except SidecarError as exc:
        report.add("approval", Status.FAIL, exc.message, "fix it, then `sidecar trust`")
        return
    context.model = check.snapshot.resolved
    report.project = context.model.name
    comparison = check.comparison
    context.approval = comparison.approval
    when = comparison.approval.approved_at if comparison.approval else ""
    if comparison.first_use:
        report.add("approval", Status.FAIL, "nothing approved yet for this folder",
                   "`sidecar up` (approves on first use) or `sidecar trust`")
    elif comparison.changed:
        names = ", ".join(comparison.names()) or "the effective compose model"
        report.add("approval", Status.FAIL, f"changed since your approval of {when}: {names}",
                   "review and approve with `sidecar trust`, then `sidecar up`")
    else:
        note = (f" (files changed without changing the model: "
                f"{', '.join(comparison.names())})" if comparison.files else "")
        report.add("approval", Status.OK, f"matches your approval of {when}{note}")


def _policy(report: DoctorReport, context: HostContext) -> None:
    if context.approval is not None:
        try:
            context.bridge = bridge_from_text(context.approval.policy[CONFIG_NAME],
                                              "approved bridge.yaml")
            context.bridge_source = "approved bridge.yaml"
            return
        except (SidecarError, KeyError):
            pass
    path = report.target.directory / CONFIG_DIR / CONFIG_NAME
    try:
        context.bridge = load_bridge(path)
        context.bridge_source = str(Path(CONFIG_DIR) / CONFIG_NAME)
    except SidecarError:
        context.bridge = None  # `render` or `approval` already said why


def _git_hooks(report: DoctorReport) -> None:
    """A `core.hooksPath` inside the work tree (husky's `.husky/`): `sidecar up` cannot make
    those hooks read-only (they are the project's files), yet your next commit runs them."""
    from sidecar_gen.trust.gitfiles import hooks_in_tree

    try:
        folder = hooks_in_tree(report.target.directory)
    except SidecarError as exc:
        report.add("git hooks", Status.WARN, exc.message, "fix the file it names")
        return
    if folder is not None:
        report.add("git hooks", Status.WARN,
                   f"core.hooksPath is {folder}, inside the work tree: the agent can write "
                   "the hooks your next commit on the host runs",
                   "read them before each commit or push on the host, or unset "
                   "core.hooksPath")


def _session(report: DoctorReport, context: HostContext, session: SessionRecord,
             folder: Path | None) -> None:
    """A session runs the model and policy stored when it was made (its own approval): read
    them for the stack checks, instead of the worktree's files, which the agent controls."""
    from sidecar_gen.session.store import MODEL_FILE
    from sidecar_gen.session.store import POLICY_DIR as SESSION_POLICY

    report.project = session.compose_project
    fix = f"`sidecar session rm {session.name}`, then `sidecar session new {session.name}`"
    if folder is None:
        report.add("session", Status.FAIL, f"session {session.name}: no state folder", fix)
        return
    try:
        policy = {name: read_text_file(folder / SESSION_POLICY / name)
                  for name in (CONFIG_NAME, DOMAINS_NAME)}
        model = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
        context.bridge = bridge_from_text(policy[CONFIG_NAME], "the session's bridge.yaml")
    except (SidecarError, OSError, ValueError) as exc:
        message = exc.message if isinstance(exc, SidecarError) else str(exc)
        report.add("session", Status.FAIL, f"session {session.name}: its stored policy or "
                   f"model is unusable: {message}", fix)
        return
    context.bridge_source = "the session's bridge.yaml"
    context.approval = Approval(project_dir=str(session.project_dir),
                                compose_project=session.compose_project, model=model,
                                files={}, policy=policy, approved_at=session.created)
    report.add("session", Status.OK, f"session {session.name} (compose project "
               f"{session.compose_project}, branch {session.branch}): policy and model "
               f"stored in {folder}")


def run_session_checks(report: DoctorReport, session: SessionRecord,
                       folder: Path | None) -> HostContext:
    """Engine, compose, and the session's stored policy and model; what the stack checks
    need. The worktree's render and approval are not checked: the session never reads them."""
    context = HostContext()
    _engine(report, context)
    _compose(report)
    _session(report, context, session, folder)
    return context


def run_host_checks(report: DoctorReport) -> HostContext:
    """Engine, compose, include, render, approval; what the stack checks need."""
    context = HostContext()
    _engine(report, context)
    compose_ok = _compose(report)
    _render(report)
    if compose_ok:
        _approval(report, context)
    else:
        report.add("approval", Status.SKIP, "needs Docker Compose (see compose)")
    if context.identity is not None and context.model is not None:
        from sidecar_gen.doctor.podman import check_socket

        check_socket(report, context.identity, context.model.doc)
    _policy(report, context)
    _git_hooks(report)
    return context
