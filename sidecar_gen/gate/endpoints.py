"""What the gate allows: one table of endpoints, each with its method, path shape, query rule,
body rule and handler, and the one function that runs a request through it (`decide`).

A new endpoint is one `Endpoint(...)` line and its handler. Handlers decide with the gate's
state (`gatekeeper`) and the pure decisions (`policy`, `listing`). Every allow decision is
taken on a container listing fetched for that very request (no cache that a rename, a
recreate or a removal could make stale), and every forwarded request names the full container
id that was checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sidecar_gen.gate import listing
from sidecar_gen.gate.engine import Reply, UpstreamError
from sidecar_gen.gate.gatekeeper import Call, Gatekeeper
from sidecar_gen.gate.http import Answer, Switch, json_message
from sidecar_gen.gate.policy import (
    EXEC_ID,
    ExecRequest,
    NoSuchContainerError,
    RefusedError,
    allow_exec,
    parse_exec,
    parse_start,
    resize_size,
)
from sidecar_gen.gate.policyfile import PolicyState
from sidecar_gen.gate.urlpath import PathRejectedError, Target, canonicalize

POLICY_HEADER = b"X-Sidecar-Policy"


Outcome = Answer | Switch


def _forward(reply: Reply) -> Answer:
    return Answer(reply.status, reply.body, headers=reply.forward_headers())


def _upstream(call: Call, cid: str | None = None,
              query: tuple[tuple[str, str], ...] | None = None) -> str:
    segments = call.target.segments
    if cid is not None:
        segments = (segments[0], cid, *segments[2:])
    return call.target.upstream_path(segments=segments, query=query)


# -- handlers: (gatekeeper, call, parsed query, parsed body) -> outcome ----------------------------


def _ping(gk: Gatekeeper, call: Call, _query: None, _body: None) -> Outcome:
    call.reason = call.target.segments[0].lstrip("_")
    reply = gk.engine.call(call.method, _upstream(call))
    headers = [*reply.forward_headers(), (POLICY_HEADER, call.state.header.encode())]
    length = reply.headers.get("content-length", "0").encode()
    return Answer(reply.status, reply.body, headers=headers,
                  length=length if call.method == "HEAD" else None)


def _list(gk: Gatekeeper, call: Call, query: listing.ListQuery, _body: None) -> Outcome:
    resolution = gk.resolve(call)
    entries = listing.evaluate(query, resolution.entries)
    if query.size and entries:
        sizes = {c["Id"]: c for c in gk.engine.listing(None, ids=[str(c["Id"]) for c in entries],
                                                       size=True)}
        entries = [{**c, **{k: sizes.get(c["Id"], {}).get(k) for k in ("SizeRw", "SizeRootFs")}}
                   for c in entries]
    call.reason = "container list, evaluated over the targets"
    return Answer(200, json.dumps(entries).encode())


def _inspect(gk: Gatekeeper, call: Call, _query: None, _body: None) -> Outcome:
    cid, _rule, _fresh = gk.target(call)
    call.reason = "inspect a target"
    return _forward(gk.engine.call("GET", _upstream(call, cid)))


def _exec_create(gk: Gatekeeper, call: Call, _query: None, request: ExecRequest) -> Outcome:
    cid, rule, fresh = gk.target(call)
    try:
        allow_exec(call.state.policy, rule, request)
    except RefusedError:
        if fresh:
            raise
        # Granted more by name (a literal name may also route here): decide on a listing.
        resolution = gk.resolve(call)
        cid = gk.target_id(call, resolution)
        allow_exec(call.state.policy, resolution.by_id[cid], request)
    call.reason = "exec into a target"
    reply = gk.engine.call("POST", _upstream(call, cid), request.doc)
    if reply.status == 201:
        exec_id = reply.json().get("Id")
        if isinstance(exec_id, str) and EXEC_ID.fullmatch(exec_id):
            gk.registry.add(exec_id, cid)
            call.note["exec_id"] = exec_id
    return _forward(reply)


def _exec_start(gk: Gatekeeper, call: Call, _query: None, doc: dict[str, Any]) -> Outcome:
    gk.exec_container(call)
    if call.headers.get(b"upgrade", b"").lower() != b"tcp":
        raise RefusedError("exec start needs 'Upgrade: tcp' and 'Connection: Upgrade'",
                           status=400)
    gk.still_target(call)
    call.reason = "start an exec of this gate"
    result = gk.engine.upgrade(_upstream(call), doc)
    if isinstance(result, Reply):
        return _forward(result)
    headers = [(b"Content-Type", v.encode("latin-1"))
               for k, v in result.headers.items() if k == "content-type"]
    return Switch(headers, result.conn.sock, bytes(result.conn.buf))


def _exec_resize(gk: Gatekeeper, call: Call, size: dict[str, int], _body: None) -> Outcome:
    gk.exec_container(call)
    gk.still_target(call)
    call.reason = "resize an exec of this gate"
    query = (("h", str(size["h"])), ("w", str(size["w"])))
    return _forward(gk.engine.call("POST", _upstream(call, query=query)))


def _exec_json(gk: Gatekeeper, call: Call, _query: None, _body: None) -> Outcome:
    gk.exec_container(call)
    gk.still_target(call)
    call.reason = "inspect an exec of this gate"
    return _forward(gk.engine.call("GET", _upstream(call)))


# -- the table --------------------------------------------------------------------------------

QueryRule = Callable[[Mapping[str, str]], Any] | None  # None: no query string
BodyRule = Callable[[bytes], Any] | None  # None: no body


@dataclass(frozen=True)
class Endpoint:
    """One allowed request shape. In `shape`, `*` is a container reference, `#` an exec id."""

    kind: str
    methods: frozenset[str]
    shape: tuple[str, ...]
    query: QueryRule
    body: BodyRule
    handle: Callable[[Gatekeeper, Call, Any, Any], Outcome]


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("ping", frozenset({"GET", "HEAD"}), ("_ping",), None, None, _ping),
    Endpoint("version", frozenset({"GET"}), ("version",), None, None, _ping),
    Endpoint("list", frozenset({"GET"}), ("containers", "json"), listing.parse_query, None,
             _list),
    Endpoint("inspect", frozenset({"GET"}), ("containers", "*", "json"), None, None, _inspect),
    Endpoint("exec_create", frozenset({"POST"}), ("containers", "*", "exec"), None, parse_exec,
             _exec_create),
    Endpoint("exec_start", frozenset({"POST"}), ("exec", "#", "start"), None, parse_start,
             _exec_start),
    Endpoint("exec_resize", frozenset({"POST"}), ("exec", "#", "resize"), resize_size, None,
             _exec_resize),
    Endpoint("exec_json", frozenset({"GET"}), ("exec", "#", "json"), None, None, _exec_json),
)


def match(method: str, raw_target: str) -> tuple[Endpoint, Target, str | None, Any]:
    """The endpoint a request line names: (endpoint, canonical target, reference in the path,
    parsed query); `RefusedError` for anything the table does not allow."""
    try:
        target = canonicalize(raw_target)
    except PathRejectedError as exc:
        raise RefusedError(f"non-canonical path: {exc.reason}") from exc
    segs = target.segments
    found = None
    for endpoint in ENDPOINTS:
        shape = endpoint.shape
        if len(shape) == len(segs) and all(
                want in ("*", "#") or want == got for want, got in zip(shape, segs, strict=True)):
            found = endpoint
            break
    if found is None:
        raise RefusedError("endpoint not in the allowlist")
    if method not in found.methods:
        raise RefusedError(f"method {method} not allowed on this endpoint")
    ref = None
    for want, got in zip(found.shape, segs, strict=True):
        if want == "#" and not EXEC_ID.fullmatch(got):
            raise RefusedError("exec id must be a full 64-character lowercase hex id")
        if want in ("*", "#"):
            ref = got
    if found.query is None:
        if target.raw_query is not None:
            raise RefusedError("query string not allowed on this endpoint")
        return found, target, ref, None
    return found, target, ref, found.query(dict(target.query))


def decide(gk: Gatekeeper, *, method: str, raw_target: str, headers: Mapping[bytes, bytes],
           body: bytes, peer: str, log: Callable[..., None]) -> Outcome:
    """Run one request through the table; log exactly one line; return what to answer."""
    state = gk.state
    call: Call | None = None
    outcome: Outcome
    try:
        endpoint, target, ref, query = match(method, raw_target)
        call = Call(method=method, raw=raw_target, target=target, ref=ref, headers=headers,
                    body=body, state=state)
        if endpoint.kind == "exec_resize":
            call.note["size"] = query
        if endpoint.body is None and body:
            raise RefusedError("this request takes no body", status=400)
        parsed = endpoint.body(body) if endpoint.body is not None else None
        if isinstance(parsed, ExecRequest):
            call.note["exec"] = parsed.audit()
        outcome = endpoint.handle(gk, call, query, parsed)
    except RefusedError as exc:
        shown = raw_target if len(raw_target) <= 200 else raw_target[:200] + "..."
        message = (f"sidecar gate: {method} {shown} is not allowed by .sidecar/bridge.yaml: "
                   f"{exc.reason}")
        _log(log, call, peer=peer, method=method, raw=raw_target, state=state,
             decision="deny", reason=exc.reason, status=exc.status)
        return Answer(exc.status, json_message(message), close=exc.status == 400)
    except NoSuchContainerError as exc:
        _log(log, call, peer=peer, method=method, raw=raw_target, state=state,
             decision="deny", reason="configured name with no target container behind it",
             status=404)
        return Answer(404, json_message(f"No such container: {exc.ref}"))
    except UpstreamError as exc:
        _log(log, call, peer=peer, method=method, raw=raw_target, state=state,
             decision="error", reason=str(exc), status=502)
        return Answer(502, json_message(f"sidecar gate: {exc}"), close=True)
    assert call is not None
    status = outcome.status if isinstance(outcome, Answer) else 101
    _log(log, call, peer=peer, method=method, raw=raw_target, state=state, decision="allow",
         reason=call.reason, status=status)
    if isinstance(outcome, Switch):
        # A second line when the stream ends: what went in (a script fed on stdin shows only
        # as its interpreter in `exec.cmd`) and what came out.
        exec_id, cid = call.ref, call.container
        outcome.on_end = lambda given, got: log(
            peer=peer, method=method, path=raw_target, target=cid, decision="allow",
            reason="exec stream ended", status=101, policy=state.header, exec_id=exec_id,
            stream={"stdin": given, "output": got})
    return outcome


def _log(log: Callable[..., None], call: Call | None, *, peer: str, method: str, raw: str,
         state: PolicyState, decision: str, reason: str, status: int) -> None:
    extra = call.note if call is not None else {}
    log(peer=peer, method=method, path=raw, target=call.container if call else None,
        decision=decision, reason=reason, status=status, policy=state.header, **extra)

