"""`sidecar up` and `sidecar trust`: verify the project against the approval, then start it.

`up` in order: resolve the model with compose and compare it (and every input file, and the
policy) with the approval; refuse on any difference (`UnapprovedChangeError`, exit 1) or, with no
approval yet, approve what is there (trust on first use); put the approved policy into the
`sidecar-policy` volume and, when that changed it, make the running gate (SIGHUP) and claude
(restart) read it; start exactly the verified model (`docker compose -f - up -d --wait`, the
model on stdin: nothing in the folder is read between the check and the start), with the
repository's execution-relevant git files mounted read-only (`startmodel`) and the approved
`sidecar.limits.routed` put on the services commands route to.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sidecar_gen.compose.cli import ComposeTarget, ResolvedModel, pull_model, up_model
from sidecar_gen.config import bridge_from_text, load_bridge
from sidecar_gen.errors import ExitCode, SidecarError
from sidecar_gen.limits import limit_routed
from sidecar_gen.runtime import contract
from sidecar_gen.runtime.names import BROKER_SERVICE, CONFIG_DIR, CONFIG_NAME, GATE_SERVICE
from sidecar_gen.session.model import Names, route_targets
from sidecar_gen.trust import secretvolume
from sidecar_gen.trust.compare import Comparison, compare
from sidecar_gen.trust.policyvolume import (
    PolicyVolumeError,
    design_problems,
    fill_policy,
    has_image,
    service_image,
)
from sidecar_gen.trust.record import ApprovalStore, state_root
from sidecar_gen.trust.snapshot import Snapshot, take_snapshot
from sidecar_gen.trust.startmodel import started_model, with_placeholder

if TYPE_CHECKING:
    from docker import DockerClient

RESTART_TIMEOUT = 10


class UnapprovedChangeError(SidecarError):
    """Something that decides how the stack starts changed since the approval."""

    def __init__(self, comparison: Comparison) -> None:
        names = ", ".join(comparison.names()) or "the effective compose model"
        super().__init__(f"changed since you approved it: {names}; review the diff above, then "
                         "`sidecar trust` to approve it", exit_code=ExitCode.FINDINGS)
        self.comparison = comparison


@dataclass(frozen=True)
class Check:
    """The project checked against its approval (no side effects yet)."""

    store: ApprovalStore
    snapshot: Snapshot
    comparison: Comparison
    notes: list[str] = field(default_factory=list)


@dataclass
class StackUp:
    """What `sidecar up` did."""

    first_use: bool = False
    record: Path | None = None
    approved_at: str = ""
    policy_changed: bool = False
    reloaded: list[str] = field(default_factory=list)
    compose_code: int = 0
    credential: str = ""  # what the broker got, in words (never the value); "" without one
    notes: list[str] = field(default_factory=list)


def store_for(target: ComposeTarget) -> ApprovalStore:
    """The approval store for the environment `target` runs with."""
    return ApprovalStore(state_root(target.environ()))


def _render_notes(directory: Path) -> list[str]:
    from sidecar_gen.render import plan_render

    try:
        plan = plan_render(directory)
    except SidecarError as exc:
        return [f"sidecar render cannot run: {exc.message}"]
    stale = [str(change.path.relative_to(directory)) for change in plan.changes if change.writes]
    if stale:
        return [f"the generated files are not up to date with bridge.yaml ({', '.join(stale)}): "
                "run `sidecar render`, then `sidecar trust`"]
    return []


def check_project(target: ComposeTarget, store: ApprovalStore | None = None, *,
                  render_notes: bool = True) -> Check:
    """Snapshot the project and compare it with its approval; `render_notes` also says when the
    generated files are stale (it renders them in memory: worth it where the user approves).

    Raises ConfigError (exit 1) for an invalid bridge.yaml: an invalid policy is never approved
    or started.
    """
    store = store or store_for(target)
    load_bridge(target.directory / CONFIG_DIR / CONFIG_NAME)
    snapshot = take_snapshot(target, store)
    problems = [*design_problems(snapshot.resolved.doc),
                *secretvolume.design_problems(snapshot.resolved.doc)]
    if problems:
        raise PolicyVolumeError(f"refusing a stack that exposes the approved policy: "
                                f"{'; '.join(problems)} (render again with `sidecar render`)")
    comparison = compare(store.load(target.directory), snapshot)
    notes = _render_notes(target.directory) if render_notes else []
    return Check(store, snapshot, comparison, notes)


@contextlib.contextmanager
def locked(target: ComposeTarget, store: ApprovalStore | None = None) -> Iterator[ApprovalStore]:
    """Hold the project's lock for a whole check-and-act sequence."""
    store = store or store_for(target)
    with store.locked(target.directory):
        yield store


def approve(check: Check) -> Path:
    """Record the checked snapshot as approved; the record's path."""
    return check.store.save(check.snapshot.approval())


def _reload_policy(client: DockerClient, project: str) -> list[str]:
    """Make the running gate and claude containers read the new policy: the gate reloads it on
    SIGHUP (a restart would drop its connections and wait out its healthcheck); claude reads it
    at start (firewall, wrappers), so it restarts. What was done, one entry per container."""
    done = []
    for role in (contract.ROLE_GATE, contract.ROLE_CLAUDE):
        for container in client.containers.list(filters={"label": [
                f"{contract.PROJECT_LABEL}={project}", f"{contract.ROLE_LABEL}={role}"]}):
            if role == contract.ROLE_GATE:
                container.kill(signal="SIGHUP")
                done.append(f"{container.name} (SIGHUP)")
            else:
                container.restart(timeout=RESTART_TIMEOUT)
                done.append(f"{container.name} (restarted)")
    return done


def start(check: Check, services: Sequence[str], client: DockerClient,
          before_compose: Callable[[StackUp], None] | None = None) -> StackUp:
    """Fill the policy volume with the approved policy and start the verified model.

    `check` must be unchanged against the approval (or a first use, approved here).
    `before_compose` is called once the volume is filled, before compose prints its progress.
    """
    comparison = check.comparison
    result = StackUp(first_use=comparison.first_use)
    if comparison.first_use:
        result.record = approve(check)
    elif comparison.changed:
        raise UnapprovedChangeError(comparison)
    approval = check.store.load(check.snapshot.target.directory)
    if approval is None:  # just written, or compared a moment ago under the same lock
        raise SidecarError("the approval record disappeared while starting")
    result.approved_at = approval.approved_at
    model = check.snapshot.resolved
    # The helper that fills the volume is made from the gate's image: on a new machine, fetch
    # it first, exactly as the verified model names it.
    if not has_image(client, service_image(model.doc, GATE_SERVICE)):
        code = pull_model(check.snapshot.target, model, [GATE_SERVICE])
        if code != 0:
            raise SidecarError(f"docker compose pull {GATE_SERVICE} failed (exit {code})",
                               exit_code=ExitCode.FINDINGS)
    result.policy_changed = fill_policy(client, model.doc, approval.policy,
                                        check.snapshot.compose_version, GATE_SERVICE)
    if result.policy_changed:
        result.reloaded = _reload_policy(client, model.name)
    kind = _hand_secret(check, client, result) if BROKER_SERVICE in (
        model.doc.get("services") or {}) else None
    if before_compose is not None:
        before_compose(result)
    limited = with_routed_limits(model, approval.policy.get(CONFIG_NAME, ""))
    started = with_placeholder(started_model(limited, check.snapshot.git.protect), kind)
    result.compose_code = up_model(check.snapshot.target, started, services)
    return result


def _hand_secret(check: Check, client: DockerClient, result: StackUp) -> str | None:
    """Give the broker the credential in force (`auth.resolve` with the environment of `up`)
    through the secrets volume; restart a running broker when it changed. The kind, or None."""
    from sidecar_gen.auth import CredentialStore, resolve

    environ = check.snapshot.target.environ()
    resolved = resolve(CredentialStore(state_root(environ)), environ)
    model = check.snapshot.resolved
    changed = secretvolume.fill_secrets(client, model.doc, secretvolume.secret_files(resolved),
                                        check.snapshot.compose_version, GATE_SERVICE)
    if changed:
        result.reloaded += secretvolume.restart_brokers(client, model.name, RESTART_TIMEOUT)
    source = resolved.anthropic
    if source is None:
        result.notes.append(
            "no Anthropic credential: the broker started without one and Claude Code cannot "
            "reach the model; run `sidecar auth set --api-key` (or --oauth-token), or set "
            "ANTHROPIC_API_KEY, then `sidecar up` again")
        return None
    result.credential = f"the {source.description} from {source.origin}"
    return source.kind


def with_routed_limits(model: ResolvedModel, bridge_text: str) -> ResolvedModel:
    """The verified model with the approved `sidecar.limits.routed` on every service a
    command routes to (unchanged when it is not set: they are the user's services)."""
    bridge = bridge_from_text(bridge_text, CONFIG_NAME)
    limit = bridge.stack.limits.routed
    if limit is None:
        return model
    targets = route_targets(bridge, model.doc, Names.of(model.name, model.doc))
    doc = limit_routed(model.doc, sorted(targets.services), limit)
    return ResolvedModel(json.dumps(doc), doc)
