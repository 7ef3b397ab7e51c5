"""The gate's state: what the endpoint handlers decide with, and one request on its way.

`Gatekeeper` holds the engine, the policy in force (replaced whole on reload), the execs this
gate created, who the gate is, which compose project it serves, and the compose-service members
it granted under the policy in force; its methods turn a `Call`'s container reference into the
full id of a target, on a listing fetched for that request (or a membership grant, which a
rename cannot make stale). The decisions themselves are pure (`policy`, `listing`); the table
of endpoints and their handlers is `endpoints`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sidecar_gen.gate.engine import Engine
from sidecar_gen.gate.policy import (
    NoSuchContainerError,
    RefusedError,
    Resolution,
    TargetRule,
    is_full_id,
    lookup,
    resolve,
)
from sidecar_gen.gate.policyfile import PolicyState
from sidecar_gen.gate.registry import ExecRegistry
from sidecar_gen.gate.urlpath import Target

MEMBERS_KEPT = 4096  # membership grants remembered (the oldest go first)


@dataclass
class Call:
    """One request on its way through the table."""

    method: str
    raw: str  # the request target as received: what the log shows
    target: Target
    ref: str | None  # the container reference or exec id in the path
    headers: Mapping[bytes, bytes]
    body: bytes
    state: PolicyState
    note: dict[str, Any] = field(default_factory=dict)  # details for the log line
    container: str | None = None  # the full id decided on
    reason: str = ""


class Gatekeeper:
    """The shared state the handlers decide with: the engine, the policy in force, the execs
    this gate created, who the gate is and which compose project it serves."""

    def __init__(self, engine: Engine, state: PolicyState, *, self_ids: Iterable[str] = (),
                 project: str | None = None) -> None:
        self.engine = engine
        self.state = state  # replaced whole on reload; read once per request
        self.registry = ExecRegistry()
        self.self_ids = frozenset(self_ids)
        self._explicit = project
        self._scope: tuple[str | None] | None = None
        self._lock = threading.Lock()
        # Full ids granted through compose-service membership under `_members_for`: never
        # stale (labels are immutable; a removed container's id reaches nothing), so start,
        # resize and inspect of an exec, and an exec by full id, need no new listing.
        self._members: OrderedDict[str, TargetRule] = OrderedDict()
        self._members_for: PolicyState | None = None
        self._members_lock = threading.Lock()

    def scope(self) -> str | None:
        """The compose project the gate serves: its own container's (asked once from the
        engine), else `--project`, else None (every container may be a target)."""
        if self._scope is None:
            with self._lock:
                if self._scope is None:
                    found: str | None = None
                    for ref in sorted(self.self_ids, key=len, reverse=True):
                        exists, project = self.engine.container_project(ref)
                        if exists:
                            found = project
                            break
                    self._scope = (found or self._explicit,)
        return self._scope[0]

    def resolve(self, call: Call) -> Resolution:
        """The targets, from a listing fetched now; refused while no policy is usable."""
        if call.state.error:
            raise RefusedError(call.state.error)
        scope = self.scope()
        resolution = resolve(call.state.policy, self.engine.listing(scope),
                             self_ids=self.self_ids, scope=scope)
        with self._members_lock:
            if call.state is not self._members_for:
                self._members.clear()
                self._members_for = call.state
            for cid, rule in resolution.by_membership.items():
                self._members[cid] = rule
                self._members.move_to_end(cid)
            while len(self._members) > MEMBERS_KEPT:
                self._members.popitem(last=False)
        return resolution

    def member_rule(self, call: Call, cid: str | None) -> TargetRule | None:
        """What `cid` was granted as a compose-service member under this call's policy."""
        with self._members_lock:
            if cid is None or call.state is not self._members_for:
                return None
            return self._members.get(cid)

    def target(self, call: Call) -> tuple[str, TargetRule, bool]:
        """(full id, rule, decided on a new listing) of the target the path names."""
        if call.ref is not None and is_full_id(call.ref):
            rule = self.member_rule(call, call.ref)
            if rule is not None:
                call.container = call.ref
                return call.ref, rule, False
        resolution = self.resolve(call)
        cid = self.target_id(call, resolution)
        return cid, resolution.by_id[cid], True

    def target_id(self, call: Call, resolution: Resolution) -> str:
        """The full id of the target the path names; refused (or 404) otherwise."""
        assert call.ref is not None
        cid = lookup(resolution, call.ref)
        if cid is None:
            if call.ref in resolution.excluded:
                raise RefusedError(f"{call.ref} is never a target: {resolution.excluded[call.ref]}")
            if call.ref in call.state.policy.configured_names():
                raise NoSuchContainerError(call.ref)
            raise RefusedError("container is not a target of any configured command")
        if not is_full_id(call.ref) and call.ref not in resolution.names \
                and self.engine.resolves_to(call.ref) != cid:
            # An id prefix: the engine would pick another container by that name, or refuse
            # the prefix as ambiguous.
            raise RefusedError("ambiguous container reference")
        call.container = cid
        return cid

    def exec_container(self, call: Call) -> str:
        """The container of an exec this gate created (not yet checked again)."""
        assert call.ref is not None
        cid = self.registry.get(call.ref)
        if cid is None:
            raise RefusedError("exec id was not created through this gate")
        call.container = cid
        return cid

    def still_target(self, call: Call) -> None:
        """Refused unless the exec's container is a target now."""
        if self.member_rule(call, call.container) is not None:
            return
        if call.container not in self.resolve(call).by_id:
            raise RefusedError("the exec's container is no longer a target")
