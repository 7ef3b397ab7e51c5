"""Issue 23's "done when", on a real engine, offline: the whole stack (init, render, `sidecar
up`) with the firewall on, and a host outside the compose network.

As user claude a request to a host not allowed fails at once; the agent reads why; `sidecar net
pending` shows the host; after `sidecar net allow HOST` the same request succeeds within 2 s
while a long-running process of the agent (Claude Code's stand-in) keeps its PID; `sidecar
audit --json` shows, in order, the routed command (gate), the refusal, the approval and the
name then reached. A forged name, a flood of names and a reload under traffic are harmless.
One stack for the whole module (about 40 s on 2 shared cores).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BUSYBOX_IMAGE, TEST_LABEL, unique_name
from ruamel.yaml import YAML
from test_e2e_stack import (
    IMAGE_VARS,
    PGID,
    PUID,
    REPO,
    Stack,
    _override,
    mapped_command,
    wait_ready,
)

pytestmark = pytest.mark.docker
HOST = "newhost.test"
FETCH = ("import sys, time, urllib.request\n"
         "start = time.monotonic()\n"
         "try:\n"
         f"    body = urllib.request.urlopen('http://{HOST}/', timeout=5).read().decode()\n"
         "    print('ok', body.strip(), round(time.monotonic() - start, 3))\n"
         "except Exception as exc:\n"
         "    print('fail', type(exc).__name__, round(time.monotonic() - start, 3))\n")
# A raw DNS query (the agent's own packet): any bytes in the name, past what glibc would send.
RAW_QUERY = """
import socket, struct, sys
# Where the forwarder listens now (a reload moves it between 127.0.0.1 and 127.0.0.2).
try:
    server = open("/run/sidecar/firewall/forwarder.addr").read().strip()
except OSError:
    server = "127.0.0.1"
def query(name, qtype=1):
    packet = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for label in name.split(b"."):
        packet += bytes([len(label)]) + label
    packet += b"\\0" + struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(packet, (server, 53))
    try:
        s.recv(512)
    except OSError:
        pass
"""


@pytest.fixture(scope="module")
def egress_stack(tmp_path_factory: pytest.TempPathFactory, docker_client: Any,
                 claude_image: str, compose_cli: list[str]) -> Iterator[tuple[Stack, Any]]:
    tmp_path = tmp_path_factory.mktemp("egress")
    sidecar_cli = [str(Path(sys.executable).parent / "sidecar")]
    project = unique_name("egress")
    root = tmp_path / project
    shutil.copytree(REPO / "examples" / "laravel", root, ignore=shutil.ignore_patterns(".sidecar"))
    (root / ".env").write_text("DB_ROOT_PASSWORD=top-secret\n")
    env = {k: v for k, v in os.environ.items() if k not in IMAGE_VARS}
    env.pop("COMPOSE_PROJECT_NAME", None)
    init = subprocess.run([*sidecar_cli, "init"], cwd=root, env=env, capture_output=True,
                          text=True)
    assert init.returncode == 0, init.stderr
    # The "internet": a network outside the compose project, with one web server on it.
    inet = docker_client.networks.create(unique_name("egress-inet"), labels={TEST_LABEL: "1"})
    inet.reload()
    subnet = inet.attrs["IPAM"]["Config"][0]["Subnet"]
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from newhost\n")
    web = docker_client.containers.run(
        BUSYBOX_IMAGE, ["httpd", "-f", "-p", "80", "-h", "/www"], detach=True,
        name=unique_name("egress-web"), labels={TEST_LABEL: "1"}, network=inet.name,
        volumes={str(www): {"bind": "/www", "mode": "ro"}})
    inet.disconnect(web)
    inet.connect(web, aliases=[HOST])
    yaml = YAML()
    bridge_path = root / ".sidecar" / "bridge.yaml"
    data = yaml.load(bridge_path.read_text())
    data["sidecar"]["image"] = claude_image
    data["sidecar"]["project"] = project
    # The offline internet lives in a private range, which no DNS answer opens unless declared.
    data["sidecar"]["firewall"] = {"private_networks": [subnet]}
    routed: dict[str, list[str]] = {}
    for name, spec in data["commands"].items():
        spec["user"] = "${PUID}:${PGID}"
        routed.setdefault(str(spec["container"]), []).append(str(name))
    with bridge_path.open("w") as handle:
        yaml.dump(data, handle)
    render = subprocess.run([*sidecar_cli, "render"], cwd=root, env=env, capture_output=True,
                            text=True)
    assert render.returncode == 0, render.stdout + render.stderr
    services = YAML(typ="safe").load((root / "compose.yaml").read_text())["services"]
    (root / "compose.override.yaml").write_text(_override(services, routed))
    env.update({v: BUSYBOX_IMAGE for v in IMAGE_VARS})
    env.update({"PUID": str(PUID), "PGID": str(PGID), "COMPOSE_PROJECT_NAME": project,
                "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"})
    for path in [root, *root.rglob("*")]:
        os.lchown(path, PUID, PGID)
    stack = Stack(root, project, env, [], compose_cli, sidecar_cli)
    try:
        stack.up()
        wait_ready(stack, mapped_command(stack)[0])
        claude = docker_client.containers.list(filters={"label": [
            f"com.docker.compose.project={project}", "com.docker.compose.service=claude"]})[0]
        inet.connect(claude)  # after the firewall is up: reachable only through the allowlist
        yield stack, claude
    finally:
        stack.run("down", "-v", "--remove-orphans", "-t", "1", timeout=120)
        web.remove(force=True)
        inet.remove()


def sidecar(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*stack.sidecar, *args], cwd=stack.root, env=stack.env,
                          capture_output=True, text=True, timeout=120)


def agent(claude: Any, *argv: str) -> str:
    result = claude.exec_run(list(argv), user="claude")
    return str(result.output.decode(errors="replace"))


def wait_for(check: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_blocked_then_allowed_live_with_one_audit_stream(egress_stack: tuple[Stack, Any]) -> None:
    stack, claude = egress_stack
    command = mapped_command(stack)[0]
    assert stack.claude(command, "-v", user="claude").returncode == 0  # the gate's exec
    # Claude Code's stand-in: a long-running process of the agent, which must survive.
    claude.exec_run(["sleep", "1000"], user="claude", detach=True)
    pid = wait_for(lambda: agent(claude, "pgrep", "-u", "claude", "-x", "sleep").split())
    assert pid, "the agent's process did not start"

    # Refused at once, and the agent can read why.
    first = agent(claude, "python3", "-c", FETCH).split()
    assert first[:2] == ["fail", "URLError"] and float(first[2]) < 1.0, first
    reason = f"blocked {HOST}: not in the allowlist (ask the user: sidecar net allow {HOST})"
    assert wait_for(lambda: reason in agent(claude, "cat", "/run/sidecar/egress/blocked")), \
        agent(claude, "cat", "/run/sidecar/egress/blocked")
    # The agent can neither write nor remove the record.
    out = agent(claude, "sh", "-c", "echo forged >> /run/sidecar/egress/record.jsonl; "
                "rm -f /run/sidecar/egress/blocked; echo rc=$?")
    assert "Permission denied" in out
    pending = sidecar(stack, "net", "pending")
    assert pending.returncode == 0 and HOST in pending.stdout, pending.stderr

    # Bad names are one line and exit 2, and change nothing.
    for bad in ("1.2.3.4", "http://x.org/", "co.uk", "", "a b.org", "github.io"):
        refused = sidecar(stack, "net", "allow", bad)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, (bad, refused)
    bridge_before = (stack.root / ".sidecar" / "bridge.yaml").read_text()

    # Allowed: the same request works within 2 s of the command returning; same PID.
    allowed = sidecar(stack, "net", "allow", HOST)
    returned = time.monotonic()
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    works = wait_for(lambda: agent(claude, "python3", "-c", FETCH).startswith("ok"), 2.0)
    took = time.monotonic() - returned
    assert works and took < 2.0, took
    print(f"allowed host answered {took:.2f} s after `sidecar net allow` returned")
    assert agent(claude, "pgrep", "-u", "claude", "-x", "sleep").split() == pid
    bridge = (stack.root / ".sidecar" / "bridge.yaml").read_text()
    assert HOST in bridge and bridge.count("#") >= bridge_before.count("#")  # comments kept
    assert HOST in (stack.root / ".sidecar" / "allowed-domains.txt").read_text()
    up = subprocess.run([*stack.sidecar, "trust", "--yes"], cwd=stack.root, env=stack.env,
                        capture_output=True, text=True, timeout=120)
    assert "nothing to approve" in up.stdout, up.stdout + up.stderr  # the change is approved
    assert HOST not in sidecar(stack, "net", "pending").stdout

    # One stream, in order: the gate's exec, the refusal, the approval, the name reached.
    time.sleep(1.5)  # the recorder's tick
    audit = sidecar(stack, "audit", "--json")
    assert audit.returncode == 0, audit.stderr
    events = [json.loads(line) for line in audit.stdout.splitlines()]
    assert all(e["v"] == 1 and set(e) == {"v", "time", "session", "source", "action",
                                          "decision", "reason", "details"} for e in events)

    def index(match: Any) -> int:
        return next(i for i, e in enumerate(events) if match(e))

    gate = index(lambda e: e["source"] == "gate" and e["action"] == "exec"
                 and e["details"]["exec"]["cmd"][:1] == [command])
    refused = index(lambda e: e["source"] == "egress" and e["decision"] == "deny"
                    and e["details"].get("name") == HOST)
    approval = index(lambda e: e["source"] == "approval" and HOST in e["details"]["names"])
    reached = index(lambda e: e["source"] == "egress" and e["decision"] == "allow"
                    and e["details"].get("name") == HOST)
    assert gate < refused < approval < reached, (gate, refused, approval, reached)
    text = sidecar(stack, "audit")
    assert text.returncode == 0 and HOST in text.stdout and "\x1b" not in text.stdout

    # A reload under traffic: the agent fetches the allowed host in a loop while another name
    # is allowed; every fetch works (no moment without a resolver, no flow cut).
    loop = ("import subprocess, sys, time\n"
            "end = time.monotonic() + 4\n"
            "with open('/tmp/loop.log', 'w') as log:\n"
            "    while time.monotonic() < end:\n"
            f"        out = subprocess.run([sys.executable, '-c', {FETCH!r}], "
            "capture_output=True, text=True).stdout\n"
            "        log.write(out)\n")
    claude.exec_run(["python3", "-c", loop], user="claude", detach=True)
    time.sleep(1)
    other = sidecar(stack, "net", "allow", "other.example")
    assert other.returncode == 0, other.stderr
    time.sleep(3.5)
    fetches = agent(claude, "cat", "/tmp/loop.log").splitlines()
    assert len(fetches) > 5 and all(line.startswith("ok") for line in fetches), fetches

    # Deny: the name is refused again at once (its addresses closed), the PID still the same.
    denied = sidecar(stack, "net", "deny", HOST)
    assert denied.returncode == 0, denied.stderr
    assert agent(claude, "python3", "-c", FETCH).startswith("fail")
    assert agent(claude, "pgrep", "-u", "claude", "-x", "sleep").split() == pid


def test_forged_names_and_a_flood_are_harmless(egress_stack: tuple[Stack, Any]) -> None:
    stack, claude = egress_stack
    forged = (b'x.org","decision":"allow"}\n{"v":1,"time":"2030-01-01T00:00:00.000Z",'
              b'"source":"gate\x1b[2J\x1b]0;pwned\x07.example')
    flood = (RAW_QUERY + f"query({forged!r})\n"
             "for n in range(5000):\n"
             "    query(b'n%d.flood.example' % n, 16)\n")
    agent(claude, "python3", "-c", flood)
    time.sleep(1.5)
    record = claude.exec_run(["stat", "-c", "%s", "/run/sidecar/egress/record.jsonl"])
    assert int(record.output) < 256 * 1024, record.output  # bounded: the rest is counted
    audit = sidecar(stack, "audit", "--json")
    assert audit.returncode == 0, audit.stderr
    for line in audit.stdout.splitlines():
        assert line.isascii() and "\x1b" not in line
        event = json.loads(line)  # every line is one whole event: nothing was forged
        assert event["time"] < "2030"
    text = sidecar(stack, "net", "log")
    assert "\x1b" not in text.stdout and "\x07" not in text.stdout
    assert "pwned" not in sidecar(stack, "net", "pending").stdout  # never offered to allow
    # The forwarder's spare address (a reload moves it there) is free, and the agent may bind
    # it, but its resolver cannot answer anyone.
    fake = (RAW_QUERY + "spare = '127.0.0.2' if server == '127.0.0.1' else '127.0.0.1'\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.bind((spare, 53))\n"
            "c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "c.sendto(b'x' * 12, (spare, 53))\n"
            "data, peer = s.recvfrom(512)\n"
            "try:\n"
            "    s.sendto(b'forged answer', peer)\n"
            "    print('answered')\n"
            "except OSError as exc:\n"
            "    print('refused', exc.errno)\n")
    assert agent(claude, "python3", "-c", fake).startswith("refused"), agent(
        claude, "python3", "-c", fake)
    # The recorder is alive, and allowed traffic still resolves.
    assert "firewall record" in claude.exec_run(["ps", "-eo", "args"]).output.decode()
    assert agent(claude, "getent", "hosts", "sidecar-gate").strip()
