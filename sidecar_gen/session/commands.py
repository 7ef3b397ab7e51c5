"""Parallel sessions: several agents on one project, each with its own worktree and services.

A session NAME of a project whose compose project is P is
- a git worktree on branch `sidecar/NAME` (default `<repo>.sessions/NAME` beside the repository),
  with the untracked files the stack needs (`.env`, env files, `.sidecar/`) copied in;
- a compose project `P-NAME` started from what compose resolves in that worktree, cut to the
  services the session needs (its own claude and gate, the services its routes run in and what
  they depend on), made collision-free (`model.plan_model`);
- a folder in the user's state directory (`store`) with its record, its compose model and
  its policy (bridge.yaml and allowlist), which the session's gate and Claude read read-only.

A session starts only from what the user approved (`sidecar trust`): the project must match its
approval and the worktree's input files must equal the approved ones (`_approved`,
`_same_as_approved`); the agent can write, and commit, everything in the project folder.

Every function returns data; the CLI (`cli/session.py`) prints it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sidecar_gen.compose.cli import ComposeTarget, ResolvedModel
from sidecar_gen.config import load_bridge
from sidecar_gen.fsutil import read_text_file, write_atomic
from sidecar_gen.host import process as hostproc
from sidecar_gen.limits import limit_routed
from sidecar_gen.runtime.names import (
    BROKER_SERVICE,
    CONFIG_DIR,
    CONFIG_NAME,
    CONFIG_VOLUME,
    DOMAINS_NAME,
    GATE_SERVICE,
    SECRETS_VOLUME,
)
from sidecar_gen.session import worktree as worktrees
from sidecar_gen.session.engine import (
    LOGIN_FILES,
    Published,
    SessionEngine,
    compose_config,
    compose_up,
    project_state,
    published_ports,
)
from sidecar_gen.session.model import Names, derive_policy, plan_model, route_targets
from sidecar_gen.session.store import (
    MODEL_FILE,
    POLICY_DIR,
    SessionError,
    SessionRecord,
    SessionStore,
    check_name,
    record_for_path,
    session_project,
    usage_error,
)
from sidecar_gen.trust import secretvolume
from sidecar_gen.trust.actions import RESTART_TIMEOUT, check_project, locked
from sidecar_gen.trust.compare import file_changes
from sidecar_gen.trust.record import Approval, ApprovalStore
from sidecar_gen.trust.snapshot import input_files
from sidecar_gen.trust.startmodel import with_placeholder


def source_dir(directory: Path) -> Path:
    """The project folder sessions belong to: `directory`, or, inside a session's worktree,
    the project that session was made from."""
    record = record_for_path(directory)
    return Path(record.source) if record else directory.resolve()


@dataclass(frozen=True)
class NewOptions:
    """What `sidecar session new` was asked for."""

    name: str
    project_dir: Path = Path(".")
    ref: str | None = None
    worktree: Path | None = None
    clone_volumes: bool = False


@dataclass
class NewResult:
    """A session that is ready."""

    record: SessionRecord
    services: tuple[str, ...]
    ports: list[Published]
    volumes: list[str]  # what was copied into the session's volumes
    notes: list[str]
    seconds: float
    handed: secretvolume.Handed = field(default_factory=secretvolume.Handed)


@dataclass
class _SessionUndo:
    """What `new` made so far, to take back when a later step fails."""

    worktree: Path | None = None
    toplevel: Path | None = None
    branch: str | None = None
    compose_project: str | None = None
    store: SessionStore | None = None
    name: str | None = None
    notes: list[str] = field(default_factory=list)

    def run(self, engine: SessionEngine) -> None:
        with contextlib.suppress(Exception):
            if self.compose_project:
                engine.remove_project(self.compose_project)
        if self.toplevel and self.worktree:
            with contextlib.suppress(SessionError):
                worktrees.remove_worktree(self.toplevel, self.worktree)
            if self.branch:
                worktrees.git(self.toplevel, "branch", "-D", self.branch, check=False)
        if self.store and self.name:
            self.store.delete(self.name)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_policy(folder: Path, project_dir: Path, record: SessionRecord, names: Names,
                  services: Sequence[str]) -> Path:
    """The session's policy folder: bridge.yaml derived for the session, the allowlist as it
    is. World-readable (the agent's uid reads its routes); the folder above it is 0700."""
    policy = folder / POLICY_DIR
    policy.mkdir(mode=0o755)
    policy.chmod(0o755)
    bridge_file = project_dir / CONFIG_DIR / CONFIG_NAME
    text = derive_policy(read_text_file(bridge_file), str(bridge_file), names=names,
                         project=record.compose_project, services=services)
    write_atomic(policy / CONFIG_NAME, text, mode=0o644)
    load_bridge(policy / CONFIG_NAME)  # the derived file must be as valid as its source
    domains = project_dir / CONFIG_DIR / DOMAINS_NAME
    if not domains.is_file():
        raise SessionError(f"{domains} is missing: run `sidecar render` in the project and "
                           "commit .sidecar/ (or keep it untracked: it is copied)")
    write_atomic(policy / DOMAINS_NAME, read_text_file(domains), mode=0o644)
    return policy


def _fill_volumes(engine: SessionEngine, image: str, plan_volumes: dict[str, str],
                  source_model: dict[str, Any], compose_project: str, *,
                  clone: bool) -> tuple[list[str], list[str]]:
    """Create the session's volumes that get content: all of them with `clone`, else only
    Claude's config volume, which gets the login (credentials) of the source project's."""
    done: list[str] = []
    notes: list[str] = []
    source_volumes = source_model.get("volumes") or {}
    for key, target in sorted(plan_volumes.items()):
        if (not clone and key != CONFIG_VOLUME) or key == SECRETS_VOLUME:
            continue  # the credential is handed over from the host (`_hand_secret`), never copied
        spec = source_volumes.get(key)
        source = spec.get("name") if isinstance(spec, dict) else None
        if not source or not engine.volume_exists(str(source)):
            if clone:
                notes.append(f"volume {key}: the source project has none yet: the session's "
                             "starts empty")
            continue
        engine.create_volume(target, compose_project, key)
        if clone:
            engine.copy_volume(image, str(source), target)
            done.append(f"{source} -> {target}")
        elif engine.copy_files(image, str(source), target, LOGIN_FILES):
            done.append(f"{source} -> {target} (login only)")
    return done, notes


@contextlib.contextmanager
def _engine() -> Iterator[SessionEngine]:
    engine = SessionEngine()
    try:
        yield engine
    finally:
        engine.close()


def _hand_secret(engine: SessionEngine, model: dict[str, Any], name: str
                 ) -> tuple[dict[str, Any], secretvolume.Handed]:
    """Give the session's broker the credential in force, as `sidecar up` gives the main
    stack's (`secretvolume.hand_secret`, with the environment of this command, else the
    `sidecar auth` store), restarting it when it changed; and the model with Claude's
    placeholder of that kind (Claude Code picks its header by the variable it reads)."""
    if BROKER_SERVICE not in (model.get("services") or {}):
        return model, secretvolume.Handed()
    # As `sidecar up` checks the project's: only the broker mounts the volume, read-only,
    # and the broker no engine socket (checked on the model that starts, the session's).
    problems = secretvolume.design_problems(model)
    if problems:
        raise SessionError(f"refusing to give the session's broker the credential: "
                           f"{'; '.join(problems)}")
    handed = secretvolume.hand_secret(model, os.environ, engine.client, None, GATE_SERVICE,
                                      again=f"sidecar session up {name}",
                                      timeout=RESTART_TIMEOUT)
    placed = with_placeholder(ResolvedModel(json.dumps(model), model), handed.kind)
    return placed.doc, handed


def _model_text(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=2, sort_keys=True) + "\n"


def _start(engine: SessionEngine, model_file: Path, compose_project: str,
           services: Sequence[str]) -> list[Published]:
    """Start the model and wait until Claude's container is ready; the published ports."""
    compose_up(model_file, compose_project, services)
    if engine.claude_container(compose_project) is None:
        raise SessionError(f"compose project {compose_project} has no Claude container")
    engine.wait_ready(compose_project)
    return published_ports(engine.containers(compose_project))


def _approved(source: Path) -> tuple[Approval, ApprovalStore, dict[str, Any]]:
    """The source project's approval (and the model compose resolves there): a session starts
    only from what the user approved, never from what the agent wrote since."""
    target = ComposeTarget(source)
    with locked(target) as approvals:
        check = check_project(target, approvals, render_notes=False)
    comparison = check.comparison
    if comparison.approval is None:
        raise SessionError(f"{source} has no approval on record: approve the project first "
                           "(`sidecar trust`, or `sidecar up`): a session starts only from "
                           "what you approved")
    if comparison.changed:
        changed = ", ".join(comparison.names()) or "the effective compose model"
        raise SessionError(f"the project changed since you approved it ({changed}): review and "
                           "approve it with `sidecar trust` in the project first")
    return comparison.approval, approvals, check.snapshot.resolved.doc


def _same_as_approved(approval: Approval, approvals: ApprovalStore, project_dir: Path) -> None:
    """Refuse a worktree whose compose files, env files or policy differ from the approved
    ones (a commit the agent made, another branch): the session would start what nobody
    approved."""
    changes = file_changes(approval.files, input_files(project_dir, approvals, os.environ))
    if changes:
        listed = ", ".join(f"{change.name} ({change.kind})" for change in changes)
        raise SessionError(f"the session's files differ from what you approved in the project: "
                           f"{listed}; start it from the approved state (--from REF), or "
                           "approve the change in the project first (`sidecar trust`)")


def new_session(options: NewOptions) -> NewResult:
    """Create session `options.name` and return when its stack is ready.

    All or nothing: when a step fails, what was made (containers, volumes, network, worktree,
    a new branch, the state folder) is removed again and the error says why.
    """
    started = time.monotonic()
    name = check_name(options.name)
    source = source_dir(options.project_dir)
    toplevel = worktrees.repo_toplevel(source)
    subdir = source.relative_to(toplevel).as_posix() if source != toplevel else ""
    approval, approvals, source_model = _approved(source)
    project = str(source_model.get("name") or "")
    compose_project = session_project(project, name)
    worktree = (options.worktree or toplevel.parent / f"{toplevel.name}.sessions" / name)
    worktree = worktree.absolute()
    engine = SessionEngine()
    undo = _SessionUndo()
    try:
        store = SessionStore(source)
        folder = store.create(name, project)
        undo.store, undo.name = store, name
        if engine.containers(compose_project):
            raise usage_error(f"compose project {compose_project} already has containers "
                              f"(`docker compose -p {compose_project} down` first)")
        branch = worktrees.branch_name(name)
        tree = worktrees.add_worktree(toplevel, worktree, branch, options.ref)
        undo.toplevel, undo.worktree = toplevel, worktree
        undo.branch = branch if tree.new_branch else None
        project_dir = worktree / subdir if subdir else worktree
        copied = worktrees.copy_missing(source, project_dir, worktrees.stack_files(source))
        _same_as_approved(approval, approvals, project_dir)
        model = compose_config(project_dir, compose_project)
        bridge = load_bridge(project_dir / CONFIG_DIR / CONFIG_NAME)
        names = Names.of(project, source_model, model)
        targets = route_targets(bridge, model, names)
        record = SessionRecord(
            name=name, project=project, compose_project=compose_project, source=str(source),
            worktree=str(worktree), subdir=subdir, branch=branch, base=tree.base,
            created=_now(), image=bridge.stack.image, git_dir=str(tree.git_dir), copied=copied)
        policy = _write_policy(folder, project_dir, record, names, sorted(targets.services))
        plan = plan_model(model, session=compose_project, name=name,
                          needed=targets.services, policy_dir=str(policy),
                          git_file=str(worktree / ".git"), git_common_dir=str(tree.common_dir))
        to_start = plan.model
        if bridge.stack.limits.routed is not None:  # as `sidecar up` starts them
            to_start = limit_routed(to_start, sorted(targets.services),
                                    bridge.stack.limits.routed)
        store.save(record)
        undo.compose_project = compose_project
        volumes, volume_notes = _fill_volumes(engine, bridge.stack.image, dict(plan.volumes),
                                              source_model, compose_project,
                                              clone=options.clone_volumes)
        to_start, handed = _hand_secret(engine, to_start, name)
        model_file = folder / MODEL_FILE
        write_atomic(model_file, _model_text(to_start), mode=0o600)
        ports = _start(engine, model_file, compose_project, plan.services)
        notes = [f"route to {c}: not a service of the compose project, so the session has "
                 "no copy of it" for c in targets.outside]
        return NewResult(record=record, services=plan.services, ports=ports, volumes=volumes,
                         notes=[*notes, *plan.notes, *volume_notes, *handed.notes],
                         seconds=time.monotonic() - started, handed=handed)
    except BaseException:
        undo.run(engine)
        raise
    finally:
        engine.close()


@dataclass
class SessionUp:
    """A stopped session started again."""

    record: SessionRecord
    ports: list[Published]
    seconds: float
    handed: secretvolume.Handed = field(default_factory=secretvolume.Handed)


def start_session(directory: Path, name: str) -> SessionUp:
    """Start session `name` again (after `docker compose stop`, a reboot) from the model and
    policy stored when it was created: nothing in the worktree is read. The session's broker
    gets the credential in force now (a changed one restarts it; Claude's placeholder follows
    its kind)."""
    started = time.monotonic()
    store = SessionStore(source_dir(directory))
    record = store.load(name)
    folder = store.folder(name)
    model_file = (folder or Path()) / MODEL_FILE
    try:
        model = json.loads(model_file.read_text(encoding="utf-8"))
        services = sorted(model["services"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SessionError(f"{model_file}: the session's model is unreadable ({exc}): "
                           f"`sidecar session rm {name}` and create it again") from None
    with _engine() as engine:
        placed, handed = _hand_secret(engine, model, name)
        if placed is not model:
            text = _model_text(placed)
            if text != model_file.read_text(encoding="utf-8"):
                write_atomic(model_file, text, mode=0o600)
        ports = _start(engine, model_file, record.compose_project, services)
    return SessionUp(record=record, ports=ports, seconds=time.monotonic() - started,
                     handed=handed)


@dataclass(frozen=True)
class SessionInfo:
    """One line of `sidecar session ls`."""

    record: SessionRecord
    state: str

    def as_json(self) -> dict[str, Any]:
        """The `--json` form."""
        r = self.record
        return {"name": r.name, "path": str(r.project_dir), "compose_project": r.compose_project,
                "state": self.state, "created": r.created, "branch": r.branch,
                "source": r.source}


def list_sessions(directory: Path, *, every_project: bool = False) -> list[SessionInfo]:
    """The sessions of the project at `directory` (or of every project), with their state."""
    from sidecar_gen.session.store import all_records

    records = all_records() if every_project else SessionStore(source_dir(directory)).records()
    if not records:
        return []
    engine = SessionEngine()
    try:
        out = []
        for record in records:
            state = project_state(engine.containers(record.compose_project))
            if not Path(record.worktree).is_dir():
                state += ", worktree missing"
            out.append(SessionInfo(record, state))
        return out
    finally:
        engine.close()


@dataclass
class RemoveResult:
    """What `sidecar session rm` did."""

    record: SessionRecord
    removed: list[str]
    worktree_removed: bool


def remove_session(directory: Path, name: str, *, keep_worktree: bool = False,
                   force: bool = False) -> RemoveResult:
    """Remove session `name`: its containers, volumes and networks, its worktree (unless
    `keep_worktree`) and its record. Its branch stays. Refuses (exit 1) to drop uncommitted
    changes in the worktree unless `force`, saying what is uncommitted."""
    store = SessionStore(source_dir(directory))
    record = store.load(name)
    worktree = Path(record.worktree)
    if not keep_worktree and not force and worktree.is_dir():
        dirty = worktrees.uncommitted(worktree, Path(record.git_dir), record.copied,
                                       record.subdir)
        if dirty:
            shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5
                                            else "")
            raise SessionError(f"session {name}'s worktree {worktree} has uncommitted changes "
                               f"({shown}): commit them, or use --keep-worktree or --force")
    with _engine() as engine:
        removed = engine.remove_project(record.compose_project)
        worktree_removed = False
        if not keep_worktree:
            toplevel = worktrees.repo_toplevel(Path(record.source))
            try:
                worktrees.remove_worktree(toplevel, worktree)
            except SessionError as exc:
                if "Permission denied" not in exc.message or not record.image:
                    raise
                # Files a routed command wrote as root: give them back to whom git runs as
                # (as root: the project folder's owner), then remove.
                owner = hostproc.owner_identity(toplevel)
                engine.give_back(record.image, worktree,
                                 owner.uid if owner else os.getuid(),
                                 owner.gid if owner else os.getgid())
                worktrees.remove_worktree(toplevel, worktree)
            worktree_removed = True
    store.delete(name)
    return RemoveResult(record=record, removed=removed, worktree_removed=worktree_removed)
