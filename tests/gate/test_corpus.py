"""The hostile corpus: every request is refused AND leaves the engine exactly as it was.

Targets: container `tgt` is configured (user `app`, env `FOO`); `foreign` and `stopped` are not;
`gatec` and `claudec` are configured but carry the protected role labels; `selfc` is configured
but is the gate's own container (as the gate detects it). After each request the test compares
a snapshot of everything the request could have touched with the one taken before the corpus.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import BUSYBOX_IMAGE, TEST_LABEL, is_podman

from gate.conftest import RunningGate, start_gate
from gate.helpers import Reply, request, send_raw

pytestmark = pytest.mark.docker

TOK = uuid.uuid4().hex[:8]
CANARY = b"canary " + TOK.encode() + b"\n"


class Env:
    """Names and ids of everything the corpus aims at."""

    def __init__(self, client: Any, gate: RunningGate, objs: dict[str, Any],
                 foreign_exec: str) -> None:
        self.client = client
        self.gate = gate
        self.objs = objs
        self.foreign_exec = foreign_exec

    def name(self, key: str) -> str:
        return str(self.objs[key].name)

    def id(self, key: str) -> str:
        return str(self.objs[key].id)


def _read_file(container: Any, path: str) -> bytes | None:
    import docker.errors

    try:
        stream, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.next()
        assert member is not None
        extracted = tar.extractfile(member)
        return extracted.read() if extracted else b""


def snapshot(env: Env) -> dict[str, Any]:
    """Everything a hostile request could change, restricted to what this test owns."""
    client = env.client
    containers = {
        c.id: (c.name, c.status, c.attrs["RestartCount"], c.attrs["State"]["Pid"] > 0)
        for c in client.containers.list(all=True, filters={"name": TOK})
    }
    labelled = sorted(c.id for c in client.containers.list(all=True,
                                                           filters={"label": f"corpus={TOK}"}))
    # One listing call (the SDK's images.list() inspects each image and fails when another
    # run on the shared engine removes one meanwhile).
    images = sorted(t for img in client.api.images() for t in img.get("RepoTags") or []
                    if TOK in t)
    busybox = client.images.get(BUSYBOX_IMAGE).id
    volumes = sorted(v.name for v in client.volumes.list() if TOK in v.name)
    networks = sorted(n.name for n in client.networks.list() if TOK in n.name)
    files = {
        key: (_read_file(env.objs[key], "/canary"), _read_file(env.objs[key], f"/tmp/pwn-{TOK}"))
        for key in ("tgt", "foreign")
    }
    execs = {
        env.foreign_exec: {k: v for k, v in client.api.exec_inspect(env.foreign_exec).items()
                           if k in ("Running", "ExitCode", "Pid")}
    }
    return {"containers": containers, "labelled": labelled, "images": images,
            "busybox": busybox, "volumes": volumes, "networks": networks, "files": files,
            "execs": execs}


@pytest.fixture(scope="module")
def env(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    created: list[Any] = []

    def run(key: str, start: bool = True, labels: dict[str, str] | None = None) -> Any:
        kwargs = {"name": f"corpus-{key}-{TOK}", "labels": {TEST_LABEL: "1", **(labels or {})},
                  "init": True}
        if start:
            c = docker_client.containers.run(BUSYBOX_IMAGE, "sleep 3600", detach=True, **kwargs)
        else:
            c = docker_client.containers.create(BUSYBOX_IMAGE, "sleep 3600", **kwargs)
        created.append(c)
        return c

    objs = {
        "tgt": run("tgt"),
        "foreign": run("foreign"),
        "stopped": run("stopped", start=False),
        "gatec": run("gatec", labels={"dev.claude-sidecar.role": "gate"}),
        "claudec": run("claudec", labels={"dev.claude-sidecar.role": "claude"}),
        "selfc": run("selfc"),
    }
    for key in ("tgt", "foreign"):
        objs[key].exec_run(["sh", "-c", f"printf 'canary {TOK}\\n' > /canary"])
    volume = docker_client.volumes.create(f"corpus-vol-{TOK}")
    network = docker_client.networks.create(f"corpus-net-{TOK}")
    # An exec the gate did not create (someone else's, on the target itself).
    foreign_exec = docker_client.api.exec_create(objs["tgt"].id, ["id"])["Id"]
    bridge = {
        "version": "1",
        "containers": {"app": objs["tgt"].name, "g": objs["gatec"].name,
                       "c": objs["claudec"].name, "s": objs["selfc"].name},
        "commands": {
            "tool": {"container": "app", "exec": "sh", "user": "app", "env": ["FOO"]},
            "gtool": {"container": "g", "exec": "sh"},
            "ctool": {"container": "c", "exec": "sh"},
            "stool": {"container": "s", "exec": "sh"},
        },
    }
    gate = start_gate(tmp_path_factory.mktemp("corpus"), bridge=bridge,
                      self_ids=frozenset({objs["selfc"].id}))
    try:
        yield Env(docker_client, gate, objs, foreign_exec)
    finally:
        gate.stop()
        for c in created:
            with contextlib.suppress(Exception):
                c.remove(force=True)
        with contextlib.suppress(Exception):  # only there if the gate failed
            docker_client.containers.get(f"corpus-evil-{TOK}").remove(force=True)
        for obj in (volume, network):
            with contextlib.suppress(Exception):
                obj.remove()


@pytest.fixture(scope="module")
def baseline(env: Env) -> dict[str, Any]:
    snap = snapshot(env)
    # The fixture itself must look right, or "unchanged" would prove nothing.
    assert snap["files"]["tgt"] == (CANARY, None)
    assert snap["files"]["foreign"] == (CANARY, None)
    assert len(snap["containers"]) == 6
    assert snap["volumes"] == [f"corpus-vol-{TOK}"]
    assert snap["networks"] == [f"corpus-net-{TOK}"]
    assert snap["execs"][env.foreign_exec]["Running"] is False
    return snap


def _tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


EVIL_CREATE = {
    "Image": BUSYBOX_IMAGE, "Cmd": ["sh", "-c", "echo pwned > /host/tmp/pwned"],
    "Labels": {"corpus": "__TOK__"},
    "HostConfig": {"Privileged": True, "Binds": ["/:/host"], "PidMode": "host"},
}
EXEC_OK = {"AttachStdout": True, "AttachStderr": True, "Cmd": ["sh", "-c", "echo x > /canary"]}


def _fill(value: Any, env: Env) -> Any:
    """Replace placeholders: {tgt} -> name, {tgt.id} -> id, {exec} -> foreign exec id."""
    if isinstance(value, str):
        out = value.replace("__TOK__", TOK).replace("{exec}", env.foreign_exec)
        for key in env.objs:
            out = out.replace("{" + key + ".id12}", env.id(key)[:12])
            out = out.replace("{" + key + ".id}", env.id(key))
            out = out.replace("{" + key + "}", env.name(key))
        return out
    if isinstance(value, dict):
        return {k: _fill(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, env) for v in value]
    return value


# (id, method, target, body) sent as a well-formed request; the gate must answer 403.
REQUESTS: list[tuple[str, str, str, Any]] = [
    ("create-privileged-root-bind", "POST", "/v1.41/containers/create?name=corpus-evil-__TOK__",
     EVIL_CREATE),
    ("create-unversioned", "POST", "/containers/create?name=corpus-evil-__TOK__", EVIL_CREATE),
    ("start-foreign-stopped", "POST", "/v1.41/containers/{stopped}/start", None),
    ("stop-foreign", "POST", "/v1.41/containers/{foreign}/stop?t=0", None),
    ("kill-foreign", "POST", "/v1.41/containers/{foreign}/kill", None),
    ("delete-foreign", "DELETE", "/v1.41/containers/{foreign}?force=1", None),
    ("rename-foreign", "POST", "/v1.41/containers/{foreign}/rename?name=x-__TOK__", None),
    ("update-foreign", "POST", "/v1.41/containers/{foreign}/update", {"RestartPolicy":
                                                                       {"Name": "always"}}),
    ("stop-target", "POST", "/v1.41/containers/{tgt}/stop?t=0", None),
    ("kill-target", "POST", "/v1.41/containers/{tgt}/kill", None),
    ("delete-target", "DELETE", "/v1.41/containers/{tgt}?force=1", None),
    ("restart-target", "POST", "/v1.41/containers/{tgt}/restart?t=0", None),
    ("pause-target", "POST", "/v1.41/containers/{tgt}/pause", None),
    ("wait-target", "POST", "/v1.41/containers/{tgt}/wait", None),
    ("archive-get-target", "GET", "/v1.41/containers/{tgt}/archive?path=/canary", None),
    ("archive-head-target", "HEAD", "/v1.41/containers/{tgt}/archive?path=/canary", None),
    ("archive-get-foreign", "GET", "/v1.41/containers/{foreign}/archive?path=/canary", None),
    ("export-target", "GET", "/v1.41/containers/{tgt}/export", None),
    ("logs-target", "GET", "/v1.41/containers/{tgt}/logs?stdout=1&stderr=1", None),
    ("top-target", "GET", "/v1.41/containers/{tgt}/top", None),
    ("changes-target", "GET", "/v1.41/containers/{tgt}/changes", None),
    ("stats-target", "GET", "/v1.41/containers/{tgt}/stats?stream=0", None),
    ("attach-target", "POST", "/v1.41/containers/{tgt}/attach?stream=1&stdin=1&stdout=1",
     None),
    ("attach-ws-target", "GET", "/v1.41/containers/{tgt}/attach/ws", None),
    ("container-resize-target", "POST", "/v1.41/containers/{tgt}/resize?h=1&w=1", None),
    ("inspect-foreign", "GET", "/v1.41/containers/{foreign}/json", None),
    ("inspect-target-with-query", "GET", "/v1.41/containers/{tgt}/json?size=1", None),
    ("containers-prune", "POST", "/v1.41/containers/prune", None),
    ("commit", "POST", "/v1.41/commit?container={tgt}&repo=corpus-evil-__TOK__", None),
    ("images-list", "GET", "/v1.41/images/json", None),
    ("images-pull", "POST", "/v1.41/images/create?fromImage=corpus-evil-__TOK__&tag=x", None),
    ("images-tag", "POST", f"/v1.41/images/{BUSYBOX_IMAGE}/tag?repo=corpus-__TOK__", None),
    ("images-delete", "DELETE", f"/v1.41/images/{BUSYBOX_IMAGE}?force=1", None),
    ("images-prune", "POST", "/v1.41/images/prune", None),
    ("build", "POST", "/v1.41/build?t=corpus-evil-__TOK__", b""),
    ("volumes-list", "GET", "/v1.41/volumes", None),
    ("volumes-create", "POST", "/v1.41/volumes/create", {"Name": "corpus-evil-__TOK__"}),
    ("volumes-delete", "DELETE", f"/v1.41/volumes/corpus-vol-{TOK}", None),
    ("volumes-prune", "POST", "/v1.41/volumes/prune", None),
    ("networks-list", "GET", "/v1.41/networks", None),
    ("networks-create", "POST", "/v1.41/networks/create", {"Name": "corpus-evil-__TOK__"}),
    ("networks-delete", "DELETE", f"/v1.41/networks/corpus-net-{TOK}", None),
    ("networks-connect", "POST", f"/v1.41/networks/corpus-net-{TOK}/connect",
     {"Container": "{foreign}"}),
    ("plugins-list", "GET", "/v1.41/plugins", None),
    ("plugins-pull", "POST", "/v1.41/plugins/pull?remote=evil", []),
    ("swarm-init", "POST", "/v1.41/swarm/init", {"ListenAddr": "127.0.0.1:2377"}),
    ("services-list", "GET", "/v1.41/services", None),
    ("secrets-list", "GET", "/v1.41/secrets", None),
    ("secrets-create", "POST", "/v1.41/secrets/create", {"Name": "s", "Data": "eA=="}),
    ("configs-list", "GET", "/v1.41/configs", None),
    ("system-info", "GET", "/v1.41/info", None),
    ("system-df", "GET", "/v1.41/system/df", None),
    ("system-events", "GET", "/v1.41/events?until=0", None),
    ("auth", "POST", "/v1.41/auth", {"username": "x", "password": "y"}),
    ("session", "POST", "/v1.41/session", None),
    ("distribution", "GET", "/v1.41/distribution/busybox/json", None),
    # exec bodies
    ("exec-privileged", "POST", "/v1.41/containers/{tgt}/exec", {**EXEC_OK, "Privileged": True}),
    ("exec-user-root", "POST", "/v1.41/containers/{tgt}/exec", {**EXEC_OK, "User": "root"}),
    ("exec-user-uid0", "POST", "/v1.41/containers/{tgt}/exec", {**EXEC_OK, "User": "0"}),
    ("exec-user-group-root", "POST", "/v1.41/containers/{tgt}/exec",
     {**EXEC_OK, "User": "app:root"}),
    ("exec-extra-env", "POST", "/v1.41/containers/{tgt}/exec",
     {**EXEC_OK, "Env": ["FOO=1", "LD_PRELOAD=/tmp/x.so"]}),
    ("exec-env-bad-token", "POST", "/v1.41/containers/{tgt}/exec",
     {**EXEC_OK, "Env": ["SIDECAR_EXEC_TOKEN=$(id)"]}),
    ("exec-lowercase-privileged", "POST", "/v1.41/containers/{tgt}/exec",
     {**EXEC_OK, "privileged": True}),
    ("exec-unknown-key", "POST", "/v1.41/containers/{tgt}/exec",
     {**EXEC_OK, "HostConfig": {"Privileged": True}}),
    ("exec-empty-cmd", "POST", "/v1.41/containers/{tgt}/exec", {**EXEC_OK, "Cmd": []}),
    ("exec-string-cmd", "POST", "/v1.41/containers/{tgt}/exec", {**EXEC_OK, "Cmd": "id"}),
    ("exec-privileged-string", "POST", "/v1.41/containers/{tgt}/exec",
     {**EXEC_OK, "Privileged": "true"}),
    ("exec-detach", "POST", "/v1.41/containers/{tgt}/exec", {**EXEC_OK, "Detach": True}),
    ("exec-into-foreign", "POST", "/v1.41/containers/{foreign}/exec", EXEC_OK),
    ("exec-into-foreign-id", "POST", "/v1.41/containers/{foreign.id}/exec", EXEC_OK),
    ("exec-into-foreign-id-prefix", "POST", "/containers/{foreign.id12}/exec", EXEC_OK),
    ("exec-into-gate-labelled", "POST", "/v1.41/containers/{gatec}/exec", EXEC_OK),
    ("exec-into-claude-labelled", "POST", "/v1.41/containers/{claudec}/exec", EXEC_OK),
    ("exec-into-gate-itself", "POST", "/v1.41/containers/{selfc}/exec", EXEC_OK),
    ("exec-with-query", "POST", "/v1.41/containers/{tgt}/exec?force=1", EXEC_OK),
    ("exec-start-foreign", "POST", "/v1.41/exec/{exec}/start", {"Detach": False}),
    ("exec-json-foreign", "GET", "/v1.41/exec/{exec}/json", None),
    ("exec-resize-foreign", "POST", "/v1.41/exec/{exec}/resize?h=1&w=1", None),
    ("exec-start-prefix", "POST", "/v1.41/exec/{exec}X/start", {"Detach": False}),
    # paths
    ("dotdot", "POST", "/v1.41/containers/{tgt}/../{foreign}/kill", None),
    ("dot", "POST", "/v1.41/containers/./{foreign}/kill", None),
    ("encoded-dotdot", "POST", "/v1.41/containers/{tgt}/%2e%2e/{foreign}/kill", None),
    ("encoded-slash", "POST", "/v1.41/containers/{foreign}%2Fkill", None),
    ("encoded-exec", "POST", "/v1.41/containers/{foreign}/%65xec", EXEC_OK),
    ("double-slash", "POST", "/v1.41//containers/{foreign}/kill", None),
    ("leading-double-slash", "POST", "//containers/create?name=corpus-evil-__TOK__",
     EVIL_CREATE),
    ("trailing-slash", "POST", "/v1.41/containers/{foreign}/exec/", EXEC_OK),
    ("json-then-dotdot", "POST", "/v1.41/containers/json/../create", EVIL_CREATE),
    ("backslash", "POST", "/v1.41/containers/{foreign}\\kill", None),
    ("semicolon", "POST", "/v1.41/containers/{foreign};/kill", None),
    ("ping-query-traversal", "GET", "/_ping?/../containers/create", None),
    ("absolute-form", "POST", "http://docker/v1.41/containers/{foreign}/kill", None),
    # version prefixes
    ("double-version", "POST", "/v1.41/v1.41/containers/{foreign}/kill", None),
    ("version-three-parts", "POST", "/v1.41.1/containers/{foreign}/kill", None),
    ("version-uppercase", "POST", "/V1.41/containers/{foreign}/kill", None),
    ("version-leading-zero", "POST", "/v01.41/containers/{foreign}/kill", None),
    ("version-suffix", "POST", "/v1.41abc/containers/{foreign}/kill", None),
    # method tricks
    ("method-lowercase-post", "post", "/v1.41/containers/create?name=corpus-evil-__TOK__",
     EVIL_CREATE),
    ("method-mixed-case", "Post", "/v1.41/containers/{foreign}/kill", None),
    ("method-put-exec", "PUT", "/v1.41/containers/{tgt}/exec", EXEC_OK),
    ("method-delete-exec", "DELETE", "/v1.41/exec/{exec}/json", None),
    ("method-post-ping", "POST", "/_ping", None),
    ("method-get-exec-create", "GET", "/v1.41/containers/{tgt}/exec", None),
    # the container list: questions the gate does not evaluate never reach the engine
    ("list-legacy-since", "GET", "/v1.41/containers/json?since={foreign}", None),
    ("list-filter-ancestor", "GET",
     "/v1.41/containers/json?filters=%7B%22ancestor%22%3A%5B%22busybox%22%5D%7D", None),
    ("list-filter-network", "GET",
     "/v1.41/containers/json?filters=%7B%22network%22%3A%5B%22bridge%22%5D%7D", None),
    ("list-filter-backtracking-regex", "GET",
     "/v1.41/containers/json?filters=%7B%22name%22%3A%5B%22(a%2B)%2B%24%22%5D%7D", None),
    ("inspect-foreign-id", "GET", "/v1.41/containers/{foreign.id}/json", None),
]

def _post(target: str, body: bytes) -> bytes:
    return (f"POST {target} HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


# (id, raw bytes): malformed HTTP, refused with 400 (or 403 when well-formed but not allowed).
RAW: list[tuple[str, bytes]] = [
    ("smuggle-cl-te", b"POST /_ping HTTP/1.1\r\nHost: d\r\nContent-Length: 4\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /v1.41/containers/{foreign}/kill "
     b"HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n"),
    ("smuggle-te-cl", b"POST /_ping HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n"
     b"Content-Length: 60\r\n\r\n0\r\n\r\nDELETE /v1.41/containers/{foreign}?force=1 HTTP/1.1\r\n"
     b"Host: d\r\n\r\n"),
    ("duplicate-content-length", b"POST /v1.41/containers/{foreign}/kill HTTP/1.1\r\nHost: d\r\n"
     b"Content-Length: 0\r\nContent-Length: 0\r\n\r\n"),
    ("obs-fold", b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-A: a\r\n b\r\n\r\n"),
    ("bare-lf", b"POST /v1.41/containers/{foreign}/kill HTTP/1.1\nHost: d\n\n"),
    ("http10-no-host", b"POST /v1.41/containers/{foreign}/kill HTTP/1.0\r\n\r\n"),
    ("http11-no-host", b"POST /v1.41/containers/{foreign}/kill HTTP/1.1\r\n\r\n"),
    ("oversized-headers", b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-Big: " + b"a" * 40000
     + b"\r\n\r\n"),
    ("oversized-body", b"POST /v1.41/containers/{tgt}/exec HTTP/1.1\r\nHost: d\r\n"
     b"Content-Type: application/json\r\nContent-Length: 200000\r\n\r\n{\"Cmd\": [\"sh\"], \"X\":\""
     + b"a" * 199960 + b"\"}"),
    ("oversized-chunked-body", b"POST /v1.41/containers/{tgt}/exec HTTP/1.1\r\nHost: d\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n" + (b"8000\r\n" + b" " * 0x8000 + b"\r\n") * 4
     + b"0\r\n\r\n"),
    ("chunked-privileged", b"POST /v1.41/containers/{tgt}/exec HTTP/1.1\r\nHost: d\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n10\r\n{\"Privileged\":tr\r\n"
     b"17\r\nue,\"Cmd\":[\"sh\"]}       \r\n0\r\n\r\n"),
    ("duplicate-json-key", _post("/v1.41/containers/{tgt}/exec",
                                 b'{"Privileged":false,"Privileged":true,"Cmd":["sh"]}')),
    ("invalid-utf8-body", _post("/v1.41/containers/{tgt}/exec", b'{"Cmd":["\xff\xfe"]}')),
    ("nan-in-body", _post("/v1.41/containers/{tgt}/exec", b'{"Cmd":["sh"],"ConsoleSize":[NaN,1]}')),
    ("deep-json", _post("/v1.41/containers/{tgt}/exec", b'{"Cmd":' + b"[" * 5000 + b"]" * 5000
                        + b"}")),
    ("nul-in-target", b"GET /_ping\x00/../containers/json HTTP/1.1\r\nHost: d\r\n\r\n"),
    ("space-in-target", b"GET /_ping /containers/create HTTP/1.1\r\nHost: d\r\n\r\n"),
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n"),
    ("garbage-text", b"HELLO DOCKER PLEASE RUN A CONTAINER\r\n\r\n"),
    ("http2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    ("get-with-body", b"GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n"
     b"\r\n{}"),
]


def _assert_refused(reply: Reply, allowed: set[int]) -> None:
    assert reply.status in allowed, (reply.status, reply.body[:300])
    if reply.status == 403 and reply.body:  # HEAD answers carry no body
        message = json.loads(reply.body)["message"]
        assert message.startswith("sidecar gate: ")
        assert "is not allowed by .sidecar/bridge.yaml" in message


@pytest.mark.parametrize(("method", "target", "body"), [r[1:] for r in REQUESTS],
                         ids=[r[0] for r in REQUESTS])
def test_hostile_request_refused_without_effect(env: Env, baseline: dict[str, Any],
                                                method: str, target: str, body: Any) -> None:
    filled = _fill(body, env)
    reply = request(env.gate.address, method, _fill(target, env), filled if body is not None
                    or method in ("POST", "PUT") else None)
    _assert_refused(reply, {403})
    assert snapshot(env) == baseline


def test_archive_put_refused_without_effect(env: Env, baseline: dict[str, Any]) -> None:
    for key in ("tgt", "foreign"):
        reply = request(env.gate.address, "PUT",
                        f"/v1.41/containers/{env.name(key)}/archive?path=/tmp",
                        _tar(f"pwn-{TOK}", b"pwned"),
                        headers={"Content-Type": "application/x-tar"})
        _assert_refused(reply, {403})
    assert snapshot(env) == baseline


def assert_raw_refused(env: Env, baseline: dict[str, Any], raw: bytes,
                       allowed: set[int]) -> None:
    """Send `raw` (placeholders filled) as it is: answered with a refusal in `allowed`, and the
    engine's state unchanged."""
    data = _fill(raw.decode("latin-1"), env).encode("latin-1")
    try:
        reply = send_raw(env.gate.address, data)
    except ConnectionError:
        pytest.fail("the gate closed the connection without an answer")
    _assert_refused(reply, allowed)
    assert snapshot(env) == baseline


@pytest.mark.parametrize("raw", [r[1] for r in RAW], ids=[r[0] for r in RAW])
def test_malformed_http_refused_without_effect(env: Env, baseline: dict[str, Any],
                                               raw: bytes) -> None:
    assert_raw_refused(env, baseline, raw, {400, 403})


def test_start_detached_of_own_exec_refused(env: Env, baseline: dict[str, Any]) -> None:
    created = request(env.gate.address, "POST", f"/v1.41/containers/{env.name('tgt')}/exec",
                      EXEC_OK)
    assert created.status == 201
    exec_id = created.json()["Id"]
    for body, headers in (({"Detach": True}, {"Connection": "Upgrade", "Upgrade": "tcp"}),
                          ({"Detach": False, "Privileged": True},
                           {"Connection": "Upgrade", "Upgrade": "tcp"}),
                          ({"Detach": False}, {})):
        reply = request(env.gate.address, "POST", f"/v1.41/exec/{exec_id}/start", body,
                        headers=headers)
        _assert_refused(reply, {400, 403})
    state = env.client.api.exec_inspect(exec_id)
    # Never started: Docker has no exit code yet; Podman says 0, but only an exec that ran
    # and ended may be removed (CanRemove, which Docker always reports false).
    never = (None, False) if not is_podman(env.client) else (0, False)
    assert (state["Running"], state["Pid"], state["ExitCode"], state["CanRemove"]) == (
        False, 0, *never)
    assert snapshot(env) == baseline


def test_corpus_size_and_log(env: Env) -> None:
    # At least 60 hostile requests; each refusal is in the decision log.
    assert len(REQUESTS) + len(RAW) + 2 >= 60
    denies = [line for line in env.gate.log_lines() if line["decision"] == "deny"]
    assert len(denies) >= 1
    assert all(line["reason"] for line in denies)

