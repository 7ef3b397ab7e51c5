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
from typing import TYPE_CHECKING, Any

from sidecar_gen import __version__
from sidecar_gen.compose.cli import ComposeTarget, ResolvedModel, pull_model, up_model
from sidecar_gen.errors import ExitCode, SidecarError
from sidecar_gen.limits import limit_routed, limits_from_plain
from sidecar_gen.runtime import contract
from sidecar_gen.runtime.names import BROKER_SERVICE, CONFIG_DIR, CONFIG_NAME, GATE_SERVICE
from sidecar_gen.trust import secretvolume
from sidecar_gen.trust.compare import Comparison, compare
from sidecar_gen.trust.policyvolume import (
    PolicyVolumeError,
    approved_in_place,
    design_problems,
    fill_policy,
    has_image,
    service_image,
)
from sidecar_gen.trust.record import Approval, ApprovalStore, state_root
from sidecar_gen.trust.snapshot import Snapshot, read_policy_file, take_snapshot
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
    restarted_brokers: list[str] = field(default_factory=list)  # a changed credential's
    notes: list[str] = field(default_factory=list)
    project: str = ""  # the compose project started


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
                  render_notes: bool = True, reuse: bool = False) -> Check:
    """Snapshot the project and compare it with its approval; `render_notes` also says when the
    generated files are stale (it renders them in memory: worth it where the user approves).
    `reuse` (`sidecar up`): take the last verified resolution while nothing it depends on
    changed, and keep this one when it matches the approval (`trust.resolved`).

    Raises ConfigError (exit 1) for an invalid bridge.yaml: an invalid policy is never approved
    or started.
    """
    from sidecar_gen.trust import resolved as cache

    store = store or store_for(target)
    approval = store.load(target.directory)
    if not (reuse and _approved_as_is(approval, target.directory)):
        # Imported here: the validator (jsonschema) is a tenth of the daily `up`.
        from sidecar_gen.config import load_bridge

        load_bridge(target.directory / CONFIG_DIR / CONFIG_NAME)
    snapshot = take_snapshot(target, store, reuse=approval if reuse else None)
    problems = [*design_problems(snapshot.resolved.doc),
                *secretvolume.design_problems(snapshot.resolved.doc)]
    if problems:
        raise PolicyVolumeError(f"refusing a stack that exposes the approved policy: "
                                f"{'; '.join(problems)} (render again with `sidecar render`)")
    comparison = compare(approval, snapshot)
    if reuse and snapshot.input_key and not snapshot.cached and snapshot.unpinned and \
            not comparison.changed:
        routed = approval is not None and \
            routed_limit(approval.policy.get(CONFIG_NAME, "")) is not None
        cache.save(store, target.directory, cache.Cached(
            snapshot.input_key, snapshot.unpinned, snapshot.compose_version, snapshot.inputs,
            routed))
    notes = _render_notes(target.directory) if render_notes else []
    return Check(store, snapshot, comparison, notes)


def _approved_as_is(approval: Approval | None, directory: Path) -> bool:
    """True when bridge.yaml is byte for byte the one approved by this version of sidecar: it
    was validated then, with the same rules (what is started is the approved copy anyway)."""
    if approval is None or approval.sidecar_version != __version__:
        return False
    try:
        return read_policy_file(directory / CONFIG_DIR / CONFIG_NAME) == \
            approval.policy.get(CONFIG_NAME)
    except SidecarError:
        return False  # load_bridge says why


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


def start(check: Check, services: Sequence[str],
          client: DockerClient | Callable[[], DockerClient],
          before_compose: Callable[[StackUp], None] | None = None) -> StackUp:
    """Fill the policy volume with the approved policy and start the verified model.

    `check` must be unchanged against the approval (or a first use, approved here).
    `client` is the engine's client, or how to connect when one is needed: when the running
    gate already reads the approved policy (`approved_in_place`), none is.
    `before_compose` is called once the volume is filled, before compose prints its progress.
    """
    comparison = check.comparison
    result = StackUp(first_use=comparison.first_use)
    if comparison.first_use:
        if callable(client):  # no engine: say so before recording anything
            client = client()
        result.record = approve(check)
    elif comparison.changed:
        raise UnapprovedChangeError(comparison)
    approval = check.store.load(check.snapshot.target.directory)
    if approval is None:  # just written, or compared a moment ago under the same lock
        raise SidecarError("the approval record disappeared while starting")
    result.approved_at = approval.approved_at
    model = check.snapshot.resolved
    result.project = model.name
    environ = check.snapshot.target.environ()
    if not approved_in_place(model.doc, approval.policy, environ):
        engine = client() if callable(client) else client
        # The helper that fills the volume is made from the gate's image: on a new machine,
        # fetch it first, exactly as the verified model names it.
        if not has_image(engine, service_image(model.doc, GATE_SERVICE)):
            code = pull_model(check.snapshot.target, model, [GATE_SERVICE])
            if code != 0:
                raise SidecarError(f"docker compose pull {GATE_SERVICE} failed (exit {code})",
                                   exit_code=ExitCode.FINDINGS)
        result.policy_changed = fill_policy(engine, model.doc, approval.policy,
                                            check.snapshot.compose_version, GATE_SERVICE)
        if result.policy_changed:
            result.reloaded = _reload_policy(engine, model.name)
    kind = _hand_secret(check, client, result) if BROKER_SERVICE in (
        model.doc.get("services") or {}) else None
    if before_compose is not None:
        before_compose(result)
    # A reused resolution knows whether the approved policy limits anything (no YAML to read).
    reused = check.snapshot.cached and not check.snapshot.routed
    limited = model if reused else with_routed_limits(model, approval.policy.get(CONFIG_NAME, ""))
    started = with_placeholder(started_model(limited, check.snapshot.git.protect), kind)
    result.compose_code = up_model(check.snapshot.target, started, services)
    return result


def _hand_secret(check: Check, client: DockerClient | Callable[[], DockerClient],
                 result: StackUp) -> str | None:
    """Give the broker the credential in force (`auth.resolve` with the environment of `up`)
    through the secrets volume; restart a running broker when it changed. The kind, or None.

    The daily `up` finds the running broker already holding it (`secretvolume.held_in_place`:
    two reads over the engine's socket) and writes nothing."""
    from sidecar_gen.auth import CredentialStore, resolve

    environ = check.snapshot.target.environ()
    resolved = resolve(CredentialStore(state_root(environ)), environ)
    model = check.snapshot.resolved
    files = secretvolume.secret_files(resolved)
    if not secretvolume.held_in_place(model.doc, files, environ):
        engine = client() if callable(client) else client
        changed = secretvolume.fill_secrets(engine, model.doc, files,
                                            check.snapshot.compose_version, GATE_SERVICE)
        if changed:
            result.restarted_brokers = secretvolume.restart_brokers(engine, model.name,
                                                                    RESTART_TIMEOUT)
    note = github_token_note(model.doc, has_token=resolved.github is not None)
    if note:
        result.notes.append(note)
    source = resolved.anthropic
    if source is None:
        result.notes.append(
            "no Anthropic credential: the broker started without one and Claude Code cannot "
            "reach the model; run `sidecar auth set --api-key` (or --oauth-token), or set "
            "ANTHROPIC_API_KEY, then `sidecar up` again")
        return None
    result.credential = f"the {source.description} from {source.origin}"
    return source.kind


def github_token_note(doc: dict[str, Any], *, has_token: bool) -> str | None:
    """The note for a broker rendered with GitHub repositories (`sidecar.broker.github`) when
    the host holds no GitHub token: git over HTTPS to them would be refused. Else None."""
    broker = (doc.get("services") or {}).get(BROKER_SERVICE) or {}
    argv = broker.get("entrypoint") if isinstance(broker, dict) else None
    listed = [a for a in argv or () if isinstance(a, str) and a.startswith("--github-repo=")]
    if not listed or has_token:
        return None
    return (f"no GitHub token: bridge.yaml lists {len(listed)} GitHub repositor"
            f"{'y' if len(listed) == 1 else 'ies'} (sidecar.broker.github) and the broker "
            "refuses git over HTTPS to them; run `sidecar auth set --github-token`, then "
            "`sidecar up` again")


def routed_limit(bridge_text: str) -> object | None:
    """The approved `sidecar.limits.routed` (None: not set), read without the schema: the
    approved text was validated when it was approved (the validator costs a tenth of a
    second, and most policies set no such limit)."""
    from sidecar_gen.yamlio import load_plain

    plain = load_plain(bridge_text, CONFIG_NAME).plain
    side = plain.get("sidecar") if isinstance(plain, dict) else None
    return limits_from_plain(side.get("limits") if isinstance(side, dict) else None).routed


def with_routed_limits(model: ResolvedModel, bridge_text: str) -> ResolvedModel:
    """The verified model with the approved `sidecar.limits.routed` on every service a
    command routes to (unchanged when it is not set: they are the user's services)."""
    if routed_limit(bridge_text) is None:
        return model
    from sidecar_gen.config import bridge_from_text
    from sidecar_gen.session.model import Names, route_targets

    bridge = bridge_from_text(bridge_text, CONFIG_NAME)
    limit = bridge.stack.limits.routed
    if limit is None:
        return model
    targets = route_targets(bridge, model.doc, Names.of(model.name, model.doc))
    doc = limit_routed(model.doc, sorted(targets.services), limit)
    return ResolvedModel(json.dumps(doc), doc)
