"""Issue 20.4 and 20.7 on a real stack started with `sidecar up`: the agent cannot exhaust the
host, and the gate's decision log stays bounded and says when input was given.

Proven by effect: the container's cgroup as the host's kernel counts it (processes, refused
forks, OOM kills), the engine's own HostConfig and LogConfig of what `up` started, and the
gate container's Docker log.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from security.trust_stack import CLAUDE_LIMIT, PUID, ROUTED_LIMIT, TrustStack, trust_stack
from sidecar_gen.gate import audit

__all__ = ["trust_stack"]  # fixtures

pytestmark = pytest.mark.slow


def cgroup_file(container: Any, controller: str, *names: str) -> Path:
    """The first of `names` in the container's cgroup, read on the host (v1 or v2)."""
    container.reload()
    pid = container.attrs["State"]["Pid"]
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            folder = Path(f"/sys/fs/cgroup/{controller}{path}")
        elif controllers == "":
            folder = Path(f"/sys/fs/cgroup{path}")
        else:
            continue
        for name in names:
            if (folder / name).exists():
                return folder / name
    raise AssertionError(f"no {names} in the {controller} cgroup of pid {pid}")


def tasks_of(tasks: Path, uid: int) -> int:
    """How many of the cgroup's tasks (processes and threads) run as `uid`."""
    count = 0
    for tid in tasks.read_text().split():
        try:
            status = Path(f"/proc/{tid}/status").read_text()
        except OSError:
            continue  # gone meanwhile
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        count += int(uid_line.split()[1]) == uid
    return count


def read_int(path: Path) -> int:
    return int(path.read_text().split()[0])


def events(path: Path) -> dict[str, int]:
    """A `key value` cgroup file (pids.events, memory.oom_control / memory.events)."""
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


# As the agent: a classic fork bomb in its own process group, with a reaper forked before it
# that kills the whole group after a few seconds (nothing could be started once it is full).
FORK_BOMB = "setsid bash -c 'g=$$; (sleep 6; kill -9 -- -$g) & b() { b | b & }; b; wait'"


def test_a_fork_bomb_as_the_agent_stops_at_the_limit(trust_stack: TrustStack) -> None:
    stack = trust_stack
    claude = stack.container("claude")
    _memory, pids_limit = CLAUDE_LIMIT
    assert claude.attrs["HostConfig"]["PidsLimit"] == pids_limit
    current = cgroup_file(claude, "pids", "pids.current")
    refused = cgroup_file(claude, "pids", "pids.events")
    before = read_int(current)
    refused_before = events(refused).get("max", 0)
    assert before < 40, before
    assert read_int(cgroup_file(claude, "pids", "pids.max")) == pids_limit
    threads = cgroup_file(claude, "pids", "tasks", "cgroup.threads")
    claude.exec_run(["bash", "-c", FORK_BOMB], user="claude", detach=True)
    peak, agents, host_ok, neighbour_ok = 0, 0, 0, 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        peak = max(peak, read_int(current))
        agents = max(agents, tasks_of(threads, PUID))
        # Meanwhile the host starts processes, and so does another container of the project.
        host_ok += subprocess.run(["true"], check=False).returncode == 0
        neighbour_ok += stack.container("app").exec_run(["true"]).exit_code == 0
        time.sleep(0.1)
    # The kernel's own count: the agent's processes filled the limit and no more; its forks
    # beyond were refused. (The engine's own execs, the healthcheck's, are moved into the
    # cgroup rather than forked there: the kernel does not count those against the limit.)
    assert pids_limit - 16 <= agents <= pids_limit, agents
    assert pids_limit <= peak <= pids_limit + 16, peak
    assert events(refused).get("max", 0) > refused_before
    assert host_ok > 0 and neighbour_ok > 0
    # Once the bomb is gone the container is as usable as before: a routed command works.
    deadline = time.monotonic() + 30
    while read_int(current) > before + 5:
        assert time.monotonic() < deadline, read_int(current)
        time.sleep(0.2)
    claude.reload()
    assert claude.status == "running"
    stack.wait_ready()


# As the agent: take memory 16 MiB at a time (each page written), up to 1 GiB.
MEMORY_HOG = ("import sys\nheld = []\nfor i in range(64):\n    held.append(bytearray(16 << 20))\n"
              "    print(i, flush=True)\n")


def test_a_memory_hog_as_the_agent_is_killed_at_the_limit(trust_stack: TrustStack) -> None:
    stack = trust_stack
    claude = stack.container("claude")
    memory_limit, _pids = CLAUDE_LIMIT
    assert claude.attrs["HostConfig"]["Memory"] == memory_limit
    ran = claude.exec_run(["python3", "-c", MEMORY_HOG], user="claude")
    printed = ran.output.decode().split()
    # Killed by the kernel (SIGKILL) before it held the 1 GiB it asked for...
    assert ran.exit_code == 137, ran
    assert printed and int(printed[-1]) < 63
    assert int(printed[-1]) * (16 << 20) < memory_limit
    # ...by the container's OOM killer, as the cgroup records it; the container lives on.
    with_count = cgroup_file(claude, "memory", "memory.oom_control", "memory.events")
    assert events(with_count).get("oom_kill", 0) >= 1, with_count.read_text()
    claude.reload()
    assert claude.status == "running"
    stack.wait_ready()


def test_up_limits_the_routed_services_and_rotates_the_logs_of_its_own(
        trust_stack: TrustStack) -> None:
    stack = trust_stack
    memory, pids = ROUTED_LIMIT
    host = {svc: stack.container(svc).attrs["HostConfig"]
            for svc in ("app", "spare", "claude", "sidecar-gate")}
    # The engine's record of what `sidecar up` started: the routed service has the approved
    # ceiling, the service no command routes to is left as the user wrote it.
    assert (host["app"]["Memory"], host["app"]["PidsLimit"]) == (memory, pids)
    assert host["spare"]["Memory"] == 0 and host["spare"]["PidsLimit"] in (None, 0, -1)
    assert (host["sidecar-gate"]["Memory"], host["sidecar-gate"]["PidsLimit"]) == \
        (256 << 20, 64)
    rotated = {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "5"}}
    assert host["claude"]["LogConfig"] == rotated
    assert host["sidecar-gate"]["LogConfig"] == rotated
    assert host["app"]["LogConfig"]["Config"] == {}  # the user's services: not ours to set
    code, report = _doctor(stack)
    assert report["routed limits"]["status"] == "ok", report["routed limits"]
    # The daily `up` (the second reuses the first's resolution) starts the same ceiling.
    for _ in range(2):
        again = stack.sidecar("up")
        assert again.returncode == 0, again.stderr
        app = stack.container("app").attrs["HostConfig"]
        assert (app["Memory"], app["PidsLimit"]) == (memory, pids)
    # Off by default: without `routed`, `up` starts the service as compose has it, and
    # doctor says so.
    bridge = stack.originals[".sidecar/bridge.yaml"]
    stack.write(".sidecar/bridge.yaml", bridge.replace(
        "    routed: {memory: 256m, pids: 128}\n", ""))
    try:
        assert stack.sidecar("trust", "--yes").returncode == 0
        up = stack.sidecar("up")
        assert up.returncode == 0, up.stderr
        app = stack.container("app").attrs["HostConfig"]
        assert app["Memory"] == 0 and app["PidsLimit"] in (None, 0, -1)
        code, report = _doctor(stack)
        limits = report["routed limits"]
        assert limits["status"] == "warn", limits
        assert f"{stack.container('app').name} (memory and pids)" in limits["message"]
        assert "sidecar.limits.routed" in limits["fix"]
        assert code == 0  # a warning
    finally:
        stack.restore()
    assert stack.container("app").attrs["HostConfig"]["PidsLimit"] == pids


def _doctor(stack: TrustStack) -> tuple[int, dict[str, dict[str, str]]]:
    ran = stack.sidecar("doctor", "--format", "json")
    return ran.returncode, {c["check"]: c for c in json.loads(ran.stdout)["checks"]}


def gate_lines(stack: TrustStack) -> list[dict[str, Any]]:
    """The decision log: the JSON lines of the gate container's Docker log."""
    text = stack.container("sidecar-gate").logs(stdout=False, stderr=True).decode()
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# As the agent, from the claude container: pipeline N refused requests with 15 KB paths at
# the gate on one connection, reading the answers; prints how many 403s came back.
FLOOD = r"""
import os, socket, sys, threading
n = int(sys.argv[1])
host, _, port = os.environ["DOCKER_HOST"][len("tcp://"):].rpartition(":")
sock = socket.create_connection((host, int(port)))
path = "/" + "a" * 15000
data = b"".join(f"GET {path}/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(n))
threading.Thread(target=sock.sendall, args=(data,), daemon=True).start()
got, buf, mark = 0, b"", b"HTTP/1.1 403 "
while got < n:
    chunk = sock.recv(1 << 20)
    if not chunk:
        break
    buf += chunk
    got += buf.count(mark)
    buf = buf[buf.rfind(mark) + 1:] if mark in buf else buf
print(got)
"""


def test_a_flood_from_the_agent_is_counted_not_logged(trust_stack: TrustStack) -> None:
    stack = trust_stack
    gate = stack.container("sidecar-gate")
    before = len(gate.logs(stdout=False, stderr=True))
    sent = 3000
    ran = stack.claude("python3", "-c", FLOOD, str(sent))
    assert ran.stdout.strip() == str(sent), ran
    networks = stack.container("claude").attrs["NetworkSettings"]["Networks"]
    addresses = {net["IPAddress"] for net in networks.values()}
    # Every request is in the log, one by one or in a count line (those come every 10 s).
    deadline = time.monotonic() + audit.SUMMARY_SECONDS + 20
    while True:
        mine = [d for d in gate_lines(stack) if d["decision"] == "deny"
                and audit.client_of(d["peer"]) in addresses
                and (d["path"].startswith("/aaaa") or "'aaaa" in d["reason"])]
        counted = sum(d.get("count", 1) for d in mine)
        if counted >= sent or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert counted == sent, counted
    assert any("since" in d and d["count"] > 1 for d in mine)
    # The Docker log grew by what the budget allows, not by the 45 MB the agent sent.
    grew = len(gate.logs(stdout=False, stderr=True)) - before
    assert grew < 2 * audit.BUDGET_BURST + 64 * 1024, grew
    assert sent * 15000 > 200 * grew


def test_a_script_fed_on_stdin_shows_in_the_log(trust_stack: TrustStack) -> None:
    stack = trust_stack
    script = "echo fed-through-stdin > /dev/null; " * 40 + "echo done\n"
    ran = stack.claude("app-sh", input_=script)
    assert (ran.returncode, ran.stdout) == (0, "done\n"), ran
    lines = gate_lines(stack)
    created = [d for d in lines if d.get("exec", {}).get("cmd") == ["sh"]]
    assert created, "the exec of a bare `sh`"
    exec_id = created[-1]["exec_id"]
    [end] = [d for d in lines if d.get("exec_id") == exec_id
             and d["reason"] == "exec stream ended"]
    assert end["stream"]["stdin"] == len(script.encode())
    assert end["stream"]["output"] >= len("done\n")
