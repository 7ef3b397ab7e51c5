"""Unit tests of the gate's pure parts: canonical paths, routing, body checks, resolution."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar_gen.gate.endpoints import match
from sidecar_gen.gate.http import MalformedError, prescan, split_head
from sidecar_gen.gate.policy import (
    Policy,
    RefusedError,
    TargetRule,
    allow_exec,
    lookup,
    parse_exec,
    parse_start,
    resolve,
    self_container_ids,
)
from sidecar_gen.gate.registry import ExecRegistry
from sidecar_gen.gate.urlpath import PathRejectedError, canonicalize
from sidecar_gen.model import bridge_from_plain
from sidecar_gen.runtime.killer import kill_command

EXEC_ID = "a" * 64


def check_exec_create(policy: Policy, rule: TargetRule, body: bytes) -> dict[str, Any]:
    """What the gate's exec-create handler decides before it forwards: the body, checked."""
    request = parse_exec(body)
    allow_exec(policy, rule, request)
    return request.doc


@pytest.mark.parametrize(("target", "version", "segments", "query"), [
    ("/_ping", None, ("_ping",), ()),
    ("/v1.41/containers/json?all=1", "v1.41", ("containers", "json"), (("all", "1"),)),
    ("/v1.47/containers/my_app-php.1/exec", "v1.47", ("containers", "my_app-php.1", "exec"), ()),
    ("/exec/" + EXEC_ID + "/resize?h=10&w=80", None, ("exec", EXEC_ID, "resize"),
     (("h", "10"), ("w", "80"))),
    ('/containers/json?filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D', None,
     ("containers", "json"), (("filters", '{"label":["a=b"]}'),)),
])
def test_canonical_targets(target: str, version: str | None, segments: tuple[str, ...],
                           query: tuple[tuple[str, str], ...]) -> None:
    parsed = canonicalize(target)
    assert (parsed.version, parsed.segments, parsed.query) == (version, segments, query)


@pytest.mark.parametrize("target", [
    "containers/json", "http://docker/_ping", "*", "/", "//_ping", "/_ping/", "/./_ping",
    "/v1.41/../_ping", "/%5fping", "/containers%2Fjson", "/containers/%2e%2e/json",
    "/containers/json#x", "/containers\\json", "/containers;x/json", "/_ping?", "/_ping?a=1&a=2",
    "/_ping?a=%zz", "/_ping?a=1?b", "/v1.41.1/_ping", "/V1.41/_ping", "/v01.41/_ping",
    "/v1.41/v1.41/_ping", "/v2.0/_ping", "/v1.12/_ping", "/v1.23/_ping", "/v1.41",
    "/_ping\x00", "/caf\u00e9", "/a b",
    "/containers/-x/json", "/containers/.x/json", "/_ping?a=<script>",
])
def test_non_canonical_targets_are_rejected(target: str) -> None:
    with pytest.raises(PathRejectedError):
        canonicalize(target)


def test_upstream_path_is_rebuilt_from_parts() -> None:
    parsed = canonicalize("/v1.41/containers/json?filters=%7B%7D&all=1")
    assert parsed.upstream_path() == "/v1.41/containers/json?filters=%7B%7D&all=1"
    assert parsed.upstream_path(segments=("containers", "abc", "json"), query=()) == \
        "/v1.41/containers/abc/json"


@pytest.mark.parametrize(("method", "target", "kind"), [
    ("GET", "/_ping", "ping"), ("HEAD", "/v1.41/_ping", "ping"), ("GET", "/version", "version"),
    ("GET", "/v1.41/containers/json?all=1&filters=%7B%7D", "list"),
    ("GET", "/containers/json?all=yes&limit=-1&size=0&trunc_cmd=0", "list"),
    ("GET", "/containers/php/json", "inspect"), ("POST", "/containers/php/exec", "exec_create"),
    ("POST", f"/exec/{EXEC_ID}/start", "exec_start"),
    ("POST", f"/v1.41/exec/{EXEC_ID}/resize?h=24&w=80", "exec_resize"),
    ("GET", f"/exec/{EXEC_ID}/json", "exec_json"),
])
def test_allowed_shapes(method: str, target: str, kind: str) -> None:
    assert match(method, target)[0].kind == kind


@pytest.mark.parametrize(("method", "target"), [
    ("get", "/_ping"), ("POST", "/_ping"), ("HEAD", "/version"), ("DELETE", "/containers/php"),
    ("POST", "/containers/create"), ("POST", "/containers/php/start"),
    ("GET", "/containers/php/archive"), ("PUT", "/containers/php/archive"),
    ("POST", "/containers/php/json"), ("GET", "/containers/php/exec"),
    ("POST", "/exec/abc/start"), ("POST", f"/exec/{EXEC_ID.upper()}/start"),
    ("POST", f"/exec/{EXEC_ID}/resize"), ("POST", f"/exec/{EXEC_ID}/resize?h=1"),
    ("POST", f"/exec/{EXEC_ID}/resize?h=1&w=x"), ("POST", f"/exec/{EXEC_ID}/resize?h=1&w=99999"),
    ("POST", f"/exec/{EXEC_ID}/resize?h=1&w=2&x=3"), ("GET", "/containers/json?since=x"),
    ("GET", "/containers/json?before=x"), ("GET", "/containers/json?filters=%5B%5D"),
    ("GET", "/containers/json?filters=nope"), ("GET", "/_ping?x=1"),
    ("POST", "/containers/php/exec?x=1"), ("GET", "/images/json"), ("GET", "/info"),
    ("GET", "/containers/a/b/json"), ("POST", "/volumes/php/exec"),
])
def test_refused_shapes(method: str, target: str) -> None:
    with pytest.raises(RefusedError):
        match(method, target)


POLICY = Policy.from_bridge(bridge_from_plain({
    "containers": {"php": "shop-php-1"},
    "default_container": "shell",
    "commands": {
        "php": {"container": "php", "exec": "php -d x=1", "user": "1000:1000", "env": ["APP"]},
        "composer": {"container": "php", "exec": ["composer"], "user": "app", "env": ["TOKEN"]},
        "npm": {"container": "node", "exec": "npm"},
    },
}))
PHP_RULE = POLICY.rules["php"]


def _body(**doc: Any) -> bytes:
    return json.dumps({"Cmd": ["php"], **doc}).encode()


def test_rules_merge_commands_of_one_container() -> None:
    assert PHP_RULE.users == {"1000:1000", "app"}
    assert PHP_RULE.env == {"APP", "TOKEN"}
    assert PHP_RULE.argv_prefixes == {("php", "-d", "x=1"), ("composer",)}
    assert POLICY.rules["shell"].any_argv
    assert not PHP_RULE.any_argv


@pytest.mark.parametrize("doc", [
    {}, {"User": "app"}, {"User": "1000:1000"}, {"User": ""}, {"Privileged": False},
    {"Env": ["APP=1", "TOKEN=x=y", f"SIDECAR_EXEC_TOKEN={'0' * 32}"]},
    {"Env": ["HOME=/tmp"]},  # the dispatcher's home for a uid without an account
    {"Tty": True, "AttachStdin": True, "WorkingDir": "/srv", "DetachKeys": "",
     "ConsoleSize": [24, 80], "Detach": False},
])
def test_exec_bodies_allowed(doc: dict[str, Any]) -> None:
    out = check_exec_create(POLICY, PHP_RULE, _body(**doc))
    assert out == {"Cmd": ["php"], **doc}


def test_strict_mode_prefixes_and_kill_command() -> None:
    strict = Policy.from_bridge(bridge_from_plain({
        "containers": {"php": "shop-php-1"}, "default_container": "shell",
        "commands": {"php": {"container": "php", "exec": "php -d x=1"}}}), strict=True)
    rule = strict.rules["php"]
    check_exec_create(strict, rule, json.dumps({"Cmd": ["php", "-d", "x=1", "-v"]}).encode())
    check_exec_create(strict, rule, json.dumps({"Cmd": kill_command("f" * 32)}).encode())
    check_exec_create(strict, strict.rules["shell"], json.dumps({"Cmd": ["anything"]}).encode())
    for cmd in (["php"], ["php", "-d", "x=2"], ["sh"], kill_command("F" * 32),
                kill_command("f" * 31), [*kill_command("f" * 32), "x"]):
        with pytest.raises(RefusedError, match="strict"):
            check_exec_create(strict, rule, json.dumps({"Cmd": cmd}).encode())
    # Not strict: any command.
    check_exec_create(POLICY, PHP_RULE, json.dumps({"Cmd": ["sh"]}).encode())


def test_exec_start_bodies() -> None:
    assert parse_start(b"") == {}
    assert parse_start(b'{"Detach":false,"Tty":true}') == {"Detach": False, "Tty": True}
    for raw in (b'{"Detach":true}', b'{"Detach":"no"}', b'{"Privileged":true}', b"[]",
                b'{"ConsoleSize":[1,2,3]}'):
        with pytest.raises(RefusedError):
            parse_start(raw)


def test_exec_audit_shows_names_never_values() -> None:
    request = parse_exec(_body(User="app", Env=["APP=s3cret", "TOKEN=x=y"], WorkingDir="/srv",
                               Tty=True))
    assert request.audit() == {"cmd": ["php"], "user": "app", "env": ["APP", "TOKEN"],
                               "workdir": "/srv", "tty": True}
    assert "s3cret" not in json.dumps(request.audit())
    assert parse_exec(_body()).audit() == {"cmd": ["php"], "user": None, "env": [],
                                           "workdir": None, "tty": False}


def _c(cid: str, name: str, **labels: str) -> dict[str, Any]:
    return {"Id": cid * 64 if len(cid) == 1 else cid, "Names": [f"/{name}"], "Labels": labels}


LISTING = [
    _c("1", "shop-php-1"),
    _c("2", "node", **{"com.docker.compose.service": "node",
                       "com.docker.compose.project": "shop"}),
    _c("3", "shop-node-2", **{"com.docker.compose.service": "node",
                              "com.docker.compose.project": "shop"}),
    _c("4", "other-node-1", **{"com.docker.compose.service": "node",
                               "com.docker.compose.project": "other"}),
    _c("5", "shell", **{"dev.claude-sidecar.role": "claude"}),
    _c("6", "unrelated"),
]


def test_resolution_follows_the_dispatcher_order() -> None:
    policy = Policy.from_bridge(bridge_from_plain({
        "containers": {"php": "shop-php-1"}, "default_container": "shell",
        "sidecar": {"project": "shop"},
        "commands": {"php": {"container": "php", "exec": "php"},
                     "npm": {"container": "node", "exec": "npm"},
                     "go": {"container": "gobox", "exec": "go"}}}))
    res = resolve(policy, LISTING)
    # containers map; compose service in the project (both replicas); the claude role never;
    # a literal name with no container is a configured name without a target.
    assert set(res.by_id) == {"1" * 64, "2" * 64, "3" * 64}
    assert [c["Id"] for c in res.entries] == ["1" * 64, "2" * 64, "3" * 64]  # listing order
    assert "gobox" in policy.configured_names()
    assert "gobox" not in res.names
    without_project = Policy(rules=policy.rules, containers=policy.containers, project=None)
    assert "4" * 64 in resolve(without_project, LISTING).by_id


def test_literal_name_used_only_without_a_compose_service() -> None:
    policy = Policy.from_bridge(bridge_from_plain({
        "commands": {"npm": {"container": "node", "exec": "npm"}}}))
    listing = [_c("2", "node"), _c("3", "x", **{"com.docker.compose.service": "node"})]
    assert set(resolve(policy, listing).by_id) == {"3" * 64}
    assert set(resolve(policy, listing[:1]).by_id) == {"2" * 64}


def test_self_and_gate_role_are_never_targets() -> None:
    policy = Policy.from_bridge(bridge_from_plain({
        "commands": {"a": {"container": "shop-php-1", "exec": "a"},
                     "b": {"container": "gatebox", "exec": "b"}}}))
    listing = [_c("1", "shop-php-1"), _c("7", "gatebox", **{"dev.claude-sidecar.role": "gate"})]
    assert set(resolve(policy, listing).by_id) == {"1" * 64}
    for role in ("claude", "viewer"):
        relabelled = [listing[0], _c("7", "gatebox", **{"dev.claude-sidecar.role": role})]
        assert set(resolve(policy, relabelled).by_id) == {"1" * 64}
    unrelated_role = [listing[0], _c("7", "gatebox", **{"dev.claude-sidecar.role": "db"})]
    assert set(resolve(policy, unrelated_role).by_id) == {"1" * 64, "7" * 64}
    assert resolve(policy, listing, self_ids=["1" * 12]).by_id == {}


def test_lookup_like_docker() -> None:
    res = resolve(POLICY, LISTING)
    assert lookup(res, "1" * 64) == "1" * 64
    assert lookup(res, "shop-php-1") == "1" * 64
    assert lookup(res, "1111") == "1" * 64
    assert lookup(res, "nope") is None
    assert lookup(res, "6" * 64) is None  # exists, not a target: like a missing one
    assert lookup(res, "unrelated") is None
    both = Policy.from_bridge(bridge_from_plain({"commands": {
        "a": {"container": "x", "exec": "a"}, "b": {"container": "y", "exec": "b"}}}))
    listing = [_c("ab" + "0" * 62, "x"), _c("ac" + "0" * 62, "y")]
    with pytest.raises(RefusedError, match="ambiguous"):
        lookup(resolve(both, listing), "a")
    assert lookup(resolve(both, listing), "ab") == "ab" + "0" * 62


def test_scope_limits_targets_to_the_gate_project() -> None:
    policy = Policy.from_bridge(bridge_from_plain({
        "containers": {"php": "shop-php-1"}, "sidecar": {"project": "elsewhere"},
        "commands": {"php": {"container": "php", "exec": "php"},
                     "npm": {"container": "node", "exec": "npm"},
                     "u": {"container": "unrelated", "exec": "u"}}}))
    # Scoped to "shop": its node members only; literal names of unlabelled containers and of
    # other projects are never targets; the scope wins over bridge.yaml's project.
    assert set(resolve(policy, LISTING, scope="shop").by_id) == {"2" * 64, "3" * 64}
    assert set(resolve(policy, LISTING, scope="other").by_id) == {"4" * 64}
    assert set(resolve(policy, LISTING, scope="nobody").by_id) == set()
    # Unscoped, bridge.yaml's project has no `node` service: the literal name applies.
    assert set(resolve(policy, LISTING).by_id) == {"1" * 64, "2" * 64, "6" * 64}


def test_service_of_protected_members_never_falls_back_to_a_literal_name() -> None:
    policy = Policy.from_bridge(bridge_from_plain({
        "commands": {"x": {"container": "claude", "exec": "x"}}}))
    listing = [_c("5", "proj-claude-1", **{"com.docker.compose.service": "claude",
                                           "dev.claude-sidecar.role": "claude"}),
               _c("6", "claude")]
    assert resolve(policy, listing).by_id == {}


def test_self_container_ids() -> None:
    cid = "0123456789abcdef" * 4
    mountinfo = (f"712 690 254:1 /docker/containers/{cid}/resolv.conf /etc/resolv.conf rw\n"
                 f"713 690 254:1 /var/lib/docker/containers/{cid}/hostname /etc/hostname rw\n")
    assert self_container_ids(mountinfo) == {cid}
    assert self_container_ids("", f"12:pids:/docker/{cid}\n") == {cid}
    assert self_container_ids("", "", cid[:12]) == {cid[:12]}
    assert self_container_ids("1 2 3 / / rw\n", "0::/\n", "myhost") == frozenset()


def test_registry_bounds_and_expiry() -> None:
    now = [0.0]
    reg = ExecRegistry(capacity=3, ttl=10.0, clock=lambda: now[0])
    for i in range(4):
        reg.add(f"e{i}", f"c{i}")
    assert reg.get("e0") is None  # evicted, oldest first
    assert reg.get("e1") == "c1"
    reg.add("e4", "c4")  # e1 was used last: e2 goes
    assert reg.get("e2") is None
    assert len(reg) == 3
    now[0] = 10.5
    assert reg.get("e1") is None  # expired


@pytest.mark.parametrize("head", [
    b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\t2",
    b"GET / HTTP/1.1\nHost: a",
    b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked",
    b"POST / HTTP/1.1\r\ncontent-length: 1\r\nCONTENT-LENGTH: 1",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
])
def test_prescan_rejects(head: bytes) -> None:
    with pytest.raises(MalformedError):
        prescan(head)


def test_prescan_and_split_accept_plain_requests() -> None:
    raw = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"
    end = split_head(raw)
    assert raw[end:] == b"{}"
    prescan(raw[:end])
    assert split_head(b"GET / HTTP/1.1\r\nHost: a\r\n") == -1


def test_target_rule_merge() -> None:
    a = TargetRule(users=frozenset({"a"}), env=frozenset({"X"}))
    b = TargetRule(any_argv=True, env=frozenset({"Y"}))
    merged = a.merge(b)
    assert (merged.users, merged.env, merged.any_argv) == ({"a"}, {"X", "Y"}, True)


_ALPHABET = "/._-%?&=#;\\:vV0123456789abcdefxyz_ping containers exec json \t\x00é"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=60))
def test_canonical_form_is_a_fixed_point(target: str) -> None:
    """Whatever is accepted contains nothing Docker would normalize, and re-serializes to
    exactly the same parts (so the gate and the engine see one path)."""
    try:
        parsed = canonicalize(target)
    except PathRejectedError:
        return
    path = target.partition("?")[0]
    assert "%" not in path and "//" not in path and not path.endswith("/")
    assert all(seg not in (".", "..") for seg in parsed.segments)
    again = canonicalize(parsed.upstream_path())
    assert (again.version, again.segments, again.query) == \
        (parsed.version, parsed.segments, parsed.query)


def test_puid_pgid_user_is_filled_from_the_gate_environment() -> None:
    doc = {"commands": {"php": {"container": "php", "exec": "php",
                                "user": "${PUID}:${PGID}"}}}
    environ = {"PUID": "1234", "PGID": "1234"}
    rule = Policy.from_bridge(bridge_from_plain(doc), environ=environ).rules["php"]
    assert rule.users == {"1234:1234"}
    check_exec_create(POLICY, rule, _body(User="1234:1234"))
    for user in ("${PUID}:${PGID}", "0:0", "1234", "root"):
        with pytest.raises(RefusedError):
            check_exec_create(POLICY, rule, _body(User=user))
    # Without PUID/PGID the gate cannot know the ids: no user is allowed for that command.
    rule = Policy.from_bridge(bridge_from_plain(doc), environ={}).rules["php"]
    assert rule.users == frozenset()
    with pytest.raises(RefusedError):
        check_exec_create(POLICY, rule, _body(User=f"{os.getuid()}:{os.getgid()}"))
