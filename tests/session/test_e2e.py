"""Parallel sessions on a real engine: a project that publishes a port, its main stack running,
and two sessions beside it, each with its own worktree, claude, gate and services.

Everything is driven through the real `sidecar` command line; the claims are checked on the
engine (containers, labels, ports, volumes, exec records) and on the disk, not on messages.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import BUSYBOX_IMAGE, unique_name

PUID, PGID = 1234, 1234
SECRET = "db-secret-from-dotenv"
# The Anthropic credential in the environment of `sidecar up` and `sidecar session new/up`.
API_KEY = "sk-ant-api03-REAL-session-key-0123456789abcdefghij"
OAUTH = "sk-ant-oat01-REAL-session-oauth-0123456789abcdefghij"
API_PLACEHOLDER = "sk-ant-api03-sidecar-broker-placeholder"
OAUTH_PLACEHOLDER = "sk-ant-oat01-sidecar-broker-placeholder"


@dataclass
class Project:
    """The source project (a git repository with a rendered stack) and its sessions."""

    root: Path
    name: str  # its compose project
    env: dict[str, str]
    port: int
    sidecar: str
    client: Any
    sessions: dict[str, Path] = field(default_factory=dict)  # name -> worktree

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 300
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.sidecar, *args], cwd=cwd or self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def compose(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`docker compose` on the main stack (`sidecar up` started it)."""
        return subprocess.run(["docker", "compose", *args], cwd=self.root,
                              env=self.env, capture_output=True, text=True, timeout=300,
                              check=False)

    def new(self, name: str, *flags: str) -> subprocess.CompletedProcess[str]:
        result = self.run("session", "new", name, *flags)
        assert result.returncode == 0, result.stdout + result.stderr
        worktree = self.root.parent / f"{self.root.name}.sessions" / name
        # The repository belongs to the host user whose ids PUID/PGID carry; these tests run
        # as root, and sidecar ran git as that user: the worktree is theirs.
        assert {(p.lstat().st_uid, p.lstat().st_gid) for p in [
            worktree, *worktree.rglob("*")]} == {(PUID, PGID)}
        self.sessions[name] = worktree
        return result

    def exec(self, name: str, *argv: str, cwd: Path | None = None
             ) -> subprocess.CompletedProcess[str]:
        return self.run("session", "exec", name, "--", *argv, cwd=cwd)

    def containers(self, compose_project: str) -> dict[str, Any]:
        """Service -> container of a compose project (one-off containers excluded)."""
        found = self.client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={compose_project}"})
        return {c.labels["com.docker.compose.service"]: c for c in found
                if c.labels.get("com.docker.compose.oneoff") != "True"}


COMPOSE = """\
services:
  app:
    image: {image}
    container_name: {project}-app
    init: true
    command: [sleep, "36000"]
    working_dir: /srv
    volumes:
      - ./:/srv
    ports:
      - "127.0.0.1:{port}:8080"
    depends_on: [db]
  db:
    image: {image}
    init: true
    command: [sleep, "36000"]
    environment:
      DB_PASSWORD: ${{DB_PASSWORD:?set it in .env}}
    volumes:
      - dbdata:/data
  worker:
    image: {image}
    init: true
    command: [sleep, "36000"]
volumes:
  dbdata:
"""

BRIDGE = """\
version: "1"
containers:
  app: {project}-app
commands:
  run:
    container: app
    exec: [sh, -c]
    workdir: /srv
    paths:
      /workspace: /srv
    user: "${{PUID}}:${{PGID}}"
  dbsh:
    container: db
    exec: [sh, -c]
    workdir: /
sidecar:
  project: {project}
  image: {claude_image}
  limits:
    routed: {{pids: 300}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _git(root: Path, *args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                   cwd=root, check=True, capture_output=True, env=env)


def _branch_with(project: Project, branch: str, rel: str, text: str) -> None:
    """A commit on a new branch from HEAD that changes one file, without touching the
    project's working tree (its stack is running from it)."""
    def git(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                               *args], cwd=project.root, env=env or project.env, input=stdin,
                              capture_output=True, text=True, check=True).stdout.strip()

    index = {**project.env, "GIT_INDEX_FILE": str(project.root.parent / f"{branch}.index")}
    blob = git("hash-object", "-w", "--stdin", stdin=text)
    git("read-tree", "HEAD", env=index)
    git("update-index", "--cacheinfo", f"100644,{blob},{rel}", env=index)
    tree = git("write-tree", env=index)
    commit = git("commit-tree", tree, "-p", "HEAD", "-m", f"{rel} on {branch}")
    git("branch", branch, commit)


def _cleanup(project: Project) -> None:
    for name in list(project.sessions):
        project.run("session", "rm", "--force", name)
    project.compose("down", "-v", "--remove-orphans", "-t", "1")
    # Whatever a failed step left behind: every compose project that starts with ours.
    for container in project.client.containers.list(all=True):
        if container.labels.get("com.docker.compose.project", "").startswith(project.name):
            container.remove(force=True, v=True)
    for kind in (project.client.networks, project.client.volumes):
        for item in kind.list():
            if (item.attrs.get("Labels") or {}).get("com.docker.compose.project", ""
                                                    ).startswith(project.name):
                item.remove()


@pytest.fixture(scope="module")
def project(claude_image: str, compose_cli: list[str],
            docker_client: Any) -> Iterator[Project]:
    name = unique_name("sess")
    # Not pytest's temporary folder (root's only): as root, sidecar runs git as the project's
    # owner, who must be able to reach it, as in a real home folder.
    base = Path(tempfile.mkdtemp(prefix="sidecar-sessions-"))
    base.chmod(0o755)
    root = base / name
    (root / ".sidecar").mkdir(parents=True)
    port = _free_port()
    (root / "compose.yaml").write_text(COMPOSE.format(image=BUSYBOX_IMAGE, project=name,
                                                      port=port))
    (root / ".sidecar" / "bridge.yaml").write_text(BRIDGE.format(project=name,
                                                                 claude_image=claude_image))
    (root / ".env").write_text(f"DB_PASSWORD={SECRET}\n")
    (root / ".gitignore").write_text(".env\n")
    (root / "sub").mkdir()
    (root / "sub" / "keep.txt").write_text("tracked\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    env.update({
        "PUID": str(PUID), "PGID": str(PGID), "XDG_STATE_HOME": str(base / "state"),
        # The worktrees belong to PUID, the tests run as root: let the tests' own git read
        # them (sidecar drops every GIT_* variable and runs git as their owner).
        "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory",
        "GIT_CONFIG_VALUE_0": "*",
        "ANTHROPIC_API_KEY": API_KEY,
    })
    env.pop("CLAUDE_CODE_OAUTH_TOKEN", None)
    sidecar = str(Path(sys.executable).parent / "sidecar")
    project = Project(root, name, env, port, sidecar, docker_client)
    try:
        render = project.run("render")
        assert render.returncode == 0, render.stdout + render.stderr
        _git(root, "init", "-q", "-b", "main")
        _git(root, "add", "-A")
        _git(root, "commit", "-qm", "the project")
        for path in [root, *root.rglob("*")]:
            os.lchown(path, PUID, PGID)
        # The first `sidecar up` approves the project (trust on first use): sessions start
        # only from what is approved.
        up = project.run("up")
        assert up.returncode == 0, up.stdout + up.stderr
        # State of the main stack the sessions start from: data in its database volume and a
        # login (plus other files) in Claude's config volume.
        seed = project.compose("exec", "-T", "db", "sh", "-c", "echo canary > /data/canary")
        assert seed.returncode == 0, seed.stderr
        login = project.compose("exec", "-T", "claude", "sh", "-c",
                                "echo '{\"token\": 7}' > /home/claude/.claude/.credentials.json"
                                " && echo past > /home/claude/.claude/history.jsonl")
        assert login.returncode == 0, login.stderr
        created = project.new("a")
        print(created.stdout)
        assert "broker    holds the Anthropic API key from environment ANTHROPIC_API_KEY" in \
            created.stdout
        assert API_KEY not in created.stdout + created.stderr
        project.new("b", "--clone-volumes")
        yield project
    finally:
        _cleanup(project)
        shutil.rmtree(base, ignore_errors=True)


def test_two_sessions_and_the_main_stack_run_side_by_side(project: Project) -> None:
    main = project.containers(project.name)
    assert set(main) == {"app", "db", "worker", "claude", "sidecar-gate", "sidecar-broker"}
    assert main["app"].name == f"{project.name}-app"
    ports: set[str] = set()
    for session in ("a", "b"):
        own = project.containers(f"{project.name}-{session}")
        # Its own claude, gate and broker, the routed services and their dependency; not the
        # worker.
        assert set(own) == {"app", "db", "claude", "sidecar-gate", "sidecar-broker"}
        assert all(c.status == "running" for c in own.values())
        assert own["app"].name == f"{project.name}-{session}-app-1"  # container_name dropped
        bindings = own["app"].attrs["NetworkSettings"]["Ports"]["8080/tcp"]
        ports |= {f"{b['HostIp']}:{b['HostPort']}" for b in bindings}
        assert all(b["HostIp"] == "127.0.0.1" for b in bindings)
        labels = own["app"].labels
        assert labels["dev.claude-sidecar.session"] == session
        # Bind mounts point into the session's own worktree.
        mounts = {m["Destination"]: m["Source"] for m in own["app"].attrs["Mounts"]}
        assert mounts["/srv"] == str(project.sessions[session])
        # .env is not in git: it was copied, or the stack would not even resolve.
        assert (project.sessions[session] / ".env").read_text() == f"DB_PASSWORD={SECRET}\n"
    # The routed services (app, db) run with the approved ceiling, in the main stack
    # (`sidecar up`) and in each session; the worker no command routes to has none.
    for compose_project in (project.name, f"{project.name}-a", f"{project.name}-b"):
        limits = {svc: c.attrs["HostConfig"]["PidsLimit"]
                  for svc, c in project.containers(compose_project).items()
                  if svc in ("app", "db", "worker")}
        assert {svc: limit for svc, limit in limits.items() if limit == 300} == \
            {"app": 300, "db": 300}, (compose_project, limits)
        assert limits.get("worker") in (None, 0, -1)
    main_ports = main["app"].attrs["NetworkSettings"]["Ports"]["8080/tcp"]
    assert [b["HostPort"] for b in main_ports] == [str(project.port)]
    assert len(ports) == 2 and f"127.0.0.1:{project.port}" not in ports
    # Ready before the engine's first probe of each gate (an interval after its start): `ls`
    # shows the engine's view, starting, then running.
    for _ in range(150):
        listing = project.run("session", "ls", "--json")
        assert listing.returncode == 0, listing.stderr
        sessions = json.loads(listing.stdout)["sessions"]
        if all(s["state"] == "running" for s in sessions):
            break
        time.sleep(0.2)
    assert [(s["name"], s["state"], s["compose_project"], s["path"]) for s in sessions] == [
        (n, "running", f"{project.name}-{n}", str(project.sessions[n])) for n in ("a", "b")]
    # Listing from inside a worktree lists the same project's sessions.
    inside = project.run("session", "ls", "--json", cwd=project.sessions["a"] / "sub")
    assert json.loads(inside.stdout)["sessions"] == sessions


def _doctor(project: Project, *args: str, cwd: Path | None = None
            ) -> tuple[int, str, dict[str, dict[str, str]]]:
    ran = project.run("doctor", "--format", "json", *args, cwd=cwd)
    report = json.loads(ran.stdout)
    return ran.returncode, report["project"], {c["check"]: c for c in report["checks"]}


def test_doctor_checks_a_session_by_name_and_from_inside_its_worktree(project: Project
                                                                      ) -> None:
    """The session's own containers and its stored policy (what its gate must run), not the
    main stack's; the test image has no Claude Code, so that is the one failure (the session's
    broker holds the credential `session new` handed it)."""
    session = f"{project.name}-a"
    code, name, checks = _doctor(project, "--session", "a")
    assert (code, name) == (1, session), checks
    failing = {n for n, c in checks.items() if c["status"] == "fail"}
    assert failing == {"claude code"}, checks
    assert checks["broker"]["status"] == "ok", checks["broker"]
    assert checks["secret"]["status"] in ("ok", "warn"), checks["secret"]  # searched
    assert checks["session"]["status"] == "ok"
    assert checks["gate policy"]["message"] == "the gate runs the approved bridge.yaml"
    assert checks["policy volume"]["status"] == "ok"
    assert checks["command run"]["message"].startswith(f"{session}-app-1: sh is ")
    assert checks["sidecar-gate"]["message"].startswith(f"{session}-sidecar-gate-1 is running")
    assert "render" not in checks and "approval" not in checks  # a session reads neither
    _, inside, _ = _doctor(project, cwd=project.sessions["a"] / "sub")
    assert inside == session
    _, main, main_checks = _doctor(project)
    assert main == project.name and main_checks["approval"]["status"] == "ok"
    app = project.containers(session)["app"]
    app.stop(timeout=1)
    try:
        code, _, checks = _doctor(project, "--session", "a")
        assert code == 1
        assert checks["command run"]["status"] == "fail"
        assert checks["command run"]["message"] == f"{session}-app-1 is exited", checks
    finally:
        app.start()


def test_a_second_session_of_the_same_name_is_refused(project: Project) -> None:
    before = project.containers(f"{project.name}-a")["claude"].id
    again = project.run("session", "new", "a")
    assert again.returncode == 2
    assert again.stderr.startswith("sidecar: error: session 'a' exists")
    assert again.stderr.count("\n") == 1
    assert project.containers(f"{project.name}-a")["claude"].id == before


def test_a_routed_command_writes_into_its_own_worktree_as_puid(project: Project) -> None:
    result = project.exec("a", "run", "echo from-a > written.txt; id -u; id -g")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(PUID), str(PGID)]
    written = project.sessions["a"] / "written.txt"
    assert written.read_text() == "from-a\n"
    assert (written.stat().st_uid, written.stat().st_gid) == (PUID, PGID)
    assert not (project.sessions["b"] / "written.txt").exists()
    assert not (project.root / "written.txt").exists()
    # The caller's folder in the worktree is the working directory, down to the routed one.
    pwd = project.exec("a", "run", "pwd", cwd=project.sessions["a"] / "sub")
    assert pwd.stdout.strip() == "/srv/sub", pwd.stderr
    # The session's database is the session's, with the main project's settings.
    db = project.exec("a", "dbsh", "echo $DB_PASSWORD; ls /data")
    assert db.stdout.split() == [SECRET], db.stderr
    # No command: Claude Code through the image's `claude` wrapper (the test image has none).
    claude = project.run("session", "exec", "a")
    assert claude.returncode == 127
    assert claude.stderr.startswith("claude: Claude Code is not installed in this image")
    # The allowlist came from the session's policy folder: the firewall enforces it.
    status = project.exec("a", "sidecar", "firewall", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "enforcing" in status.stdout


def test_git_reads_in_the_session_and_its_git_file_cannot_be_rewritten(project: Project
                                                                      ) -> None:
    worktree = project.sessions["a"]
    pointer = (worktree / ".git").read_text()
    assert pointer.startswith("gitdir: ")
    # Rewriting the pointer would make the user's next `git status` in the worktree run the
    # agent's program on the host: refused as the agent and through a routed command.
    as_claude = project.exec("a", "sh", "-c", "echo 'gitdir: /tmp/x' > /workspace/.git")
    routed = project.exec("a", "run", "echo 'gitdir: /tmp/x' > .git || rm -f .git")
    assert as_claude.returncode != 0 and routed.returncode != 0
    assert (worktree / ".git").read_text() == pointer
    # git reads the repository inside the session (read-only: commits are made on the host).
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project.root, env=project.env,
                          capture_output=True, text=True, check=True).stdout.strip()
    log = project.exec("a", "git", "log", "-1", "--format=%H")
    assert (log.returncode, log.stdout.strip()) == (0, head), log.stderr
    status = project.exec("a", "git", "status", "--short")
    assert status.returncode == 0, status.stderr
    commit = project.exec("a", "git", "commit", "--allow-empty", "-qm", "x")
    assert commit.returncode != 0
    assert "Read-only file system" in commit.stderr


GATE_PROBE = r"""
import http.client, json, sys
def call(method, path, body=None):
    c = http.client.HTTPConnection("sidecar-gate", 2375, timeout=20)
    c.request(method, path, json.dumps(body) if body is not None else None,
              {"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, r.read().decode()
out = {"listed": json.loads(call("GET", "/v1.41/containers/json?all=1")[1])}
out["listed"] = [c["Id"] for c in out["listed"]]
out["execs"] = {}
for ref in sys.argv[1:]:
    # The most the gate allows for a target: only the container decides.
    status, body = call("POST", f"/v1.41/containers/{ref}/exec",
                        {"Cmd": ["touch", "/tmp/pwned"], "AttachStdout": True})
    out["execs"][ref] = [status, body]
print(json.dumps(out))
"""


def test_a_sessions_gate_refuses_the_other_sessions_containers(project: Project) -> None:
    a = project.containers(f"{project.name}-a")
    b = project.containers(f"{project.name}-b")
    main = project.containers(project.name)
    # The agent of session a rewrites its worktree's bridge.yaml through a routed command
    # to route into session b's app as root; then it talks to its gate directly.
    edit = project.exec("a", "run", f"printf '  own:\\n    container: {b['app'].name}\\n"
                        "    exec: sh\\n    user: \"0\"\\n' >> .sidecar/bridge.yaml")
    assert edit.returncode == 0, edit.stderr
    foreign = [b["app"].id, b["app"].name, b["db"].id, main["app"].name, main["db"].id,
               b["claude"].id, main["sidecar-gate"].id]
    probe = project.exec("a", "python3", "-c", GATE_PROBE, *foreign, a["db"].id)
    assert probe.returncode == 0, probe.stderr
    out = json.loads(probe.stdout)
    for ref in foreign:
        status, body = out["execs"][ref]
        # Refused (403), or answered like a container that does not exist (404).
        assert status in (403, 404), (ref, status, body)
    # The control: the same request for its own database is allowed (created, not started).
    own_status, own_body = out["execs"][a["db"].id]
    assert own_status == 201, own_body
    # Listing shows a's own targets and nothing of b or the main stack.
    assert set(out["listed"]) <= {a["app"].id, a["db"].id}
    assert a["app"].id in out["listed"]
    # By effect: the engine holds no exec of that command in any foreign container (their
    # healthchecks are execs too: each exec is looked at), and no file appeared.
    def probe_execs(container: Any) -> list[str]:
        container.reload()
        found = []
        for exec_id in container.attrs.get("ExecIDs") or []:
            config = project.client.api.exec_inspect(exec_id)["ProcessConfig"]
            if [config["entrypoint"], *config["arguments"]] == ["touch", "/tmp/pwned"]:
                found.append(exec_id)
        return found

    assert len(probe_execs(a["db"])) == 1  # the control's: the check can see one
    for container in (b["app"], b["db"], main["app"], main["db"], b["claude"],
                      main["sidecar-gate"]):
        assert probe_execs(container) == [], container.name
        assert container.exec_run(["test", "-e", "/tmp/pwned"]).exit_code == 1


def test_clone_volumes_copies_content_and_every_session_has_the_login(project: Project
                                                                      ) -> None:
    a_data = project.exec("a", "dbsh", "ls -A /data")
    b_data = project.exec("b", "dbsh", "cat /data/canary")
    assert (a_data.returncode, a_data.stdout) == (0, "")
    assert (b_data.returncode, b_data.stdout) == (0, "canary\n")
    for session in ("a", "b"):
        login = project.exec(session, "cat", "/home/claude/.claude/.credentials.json")
        assert login.stdout.strip() == '{"token": 7}', login.stderr
        owner = project.exec(session, "stat", "-c", "%u:%g",
                             "/home/claude/.claude/.credentials.json")
        assert owner.stdout.strip() == f"{PUID}:{PGID}"
    history = {s: project.exec(s, "test", "-e", "/home/claude/.claude/history.jsonl").returncode
               for s in ("a", "b")}
    assert history == {"a": 1, "b": 0}  # only --clone-volumes copies the rest
    # The copies are the session's own: a write in b does not reach the main volume.
    assert project.exec("b", "dbsh", "echo changed > /data/canary").returncode == 0
    main = project.compose("exec", "-T", "db", "cat", "/data/canary")
    assert main.stdout == "canary\n"


def _running(project: Project, compose_project: str) -> bool:
    found = project.containers(compose_project)
    return bool(found) and all(c.status == "running" for c in found.values())


def test_rm_refuses_uncommitted_work_then_removes_only_that_session(project: Project) -> None:
    project.new("c")
    worktree = project.sessions["c"]
    assert project.exec("c", "run", "echo draft > wip.txt").returncode == 0
    refused = project.run("session", "rm", "c")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1
    assert "uncommitted changes (?? wip.txt)" in refused.stderr
    assert _running(project, f"{project.name}-c")
    assert (worktree / "wip.txt").exists()
    removed = project.run("session", "rm", "--force", "c")
    assert removed.returncode == 0, removed.stderr
    del project.sessions["c"]
    label = {"label": f"com.docker.compose.project={project.name}-c"}
    assert project.client.containers.list(all=True, filters=label) == []
    assert project.client.volumes.list(filters=label) == []
    assert project.client.networks.list(filters=label) == []
    assert not worktree.exists()
    branches = subprocess.run(["git", "branch", "--list", "sidecar/c"], cwd=project.root,
                              capture_output=True, text=True, check=True, env=project.env)
    assert branches.stdout.strip() == "sidecar/c"
    for other in (project.name, f"{project.name}-a", f"{project.name}-b"):
        assert _running(project, other), other
    names = [s["name"] for s in json.loads(
        project.run("session", "ls", "--json").stdout)["sessions"]]
    assert names == ["a", "b"]


def test_rm_keep_worktree_keeps_the_work_and_drops_the_stack(project: Project) -> None:
    project.new("d")
    worktree = project.sessions["d"]
    assert project.exec("d", "run", "echo draft > wip.txt").returncode == 0
    kept = project.run("session", "rm", "--keep-worktree", "d")
    assert kept.returncode == 0, kept.stderr
    del project.sessions["d"]
    assert (worktree / "wip.txt").read_text() == "draft\n"
    label = {"label": f"com.docker.compose.project={project.name}-d"}
    assert project.client.containers.list(all=True, filters=label) == []
    assert project.client.volumes.list(filters=label) == []
    subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=project.root,
                   check=True, env=project.env)


def test_a_stopped_session_comes_back_with_session_up(project: Project) -> None:
    compose_project = f"{project.name}-a"
    stop = subprocess.run(["docker", "compose", "-p", compose_project, "stop", "-t", "1"],
                          capture_output=True, text=True, check=False, env=project.env)
    assert stop.returncode == 0, stop.stderr
    states = {s["name"]: s["state"] for s in json.loads(
        project.run("session", "ls", "--json").stdout)["sessions"]}
    assert states == {"a": "stopped", "b": "running"}
    refused = project.exec("a", "true")
    assert refused.returncode == 1
    assert "session a is not running (stopped): start it with `sidecar session up a`" in \
        refused.stderr
    up = project.run("session", "up", "a")
    assert up.returncode == 0, up.stderr
    assert up.stdout.startswith("session a ready in ")
    assert _running(project, compose_project)
    again = project.exec("a", "run", "cat written.txt 2>/dev/null; echo up")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "up"


def _nothing_left_of(project: Project, name: str) -> None:
    assert not (project.root.parent / f"{project.root.name}.sessions" / name).exists()
    assert not project.containers(f"{project.name}-{name}")
    branches = subprocess.run(["git", "branch", "--list", f"sidecar/{name}"], cwd=project.root,
                              env=project.env, capture_output=True, text=True, check=True)
    assert branches.stdout.strip() == ""
    listed = project.run("session", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert name not in {s["name"] for s in json.loads(listed.stdout)["sessions"]}


def test_a_session_never_starts_what_was_not_approved(project: Project) -> None:
    """The agent writes the project folder (and can commit): a session must not start a
    compose file or a policy that changed since the user's approval, whether the change is in
    the project's files or only in the commit the session is made from."""
    compose = project.root / "compose.yaml"
    original = compose.read_text()
    compose.write_text(original.replace("services:\n", "services:\n  evil:\n"
                                        f"    image: {BUSYBOX_IMAGE}\n    privileged: true\n"
                                        "    command: [sleep, '600']\n", 1))
    try:
        refused = project.run("session", "new", "x")
    finally:
        compose.write_text(original)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "compose.yaml" in refused.stderr and "sidecar trust" in refused.stderr
    _nothing_left_of(project, "x")
    bridge = (project.root / ".sidecar" / "bridge.yaml").read_text()
    wider = bridge.replace("commands:\n", "commands:\n  rootsh:\n    container: db\n"
                           "    exec: [sh, -c]\n    user: '0'\n", 1)
    assert wider != bridge
    _branch_with(project, "wider", ".sidecar/bridge.yaml", wider)
    refused = project.run("session", "new", "y", "--from", "wider")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert ".sidecar/bridge.yaml (changed)" in refused.stderr
    _nothing_left_of(project, "y")


def test_a_literal_name_of_another_sessions_container_is_out_of_scope(project: Project
                                                                      ) -> None:
    """Even a policy that names another session's container (a literal name, which the
    session's policy keeps as written) reaches nothing outside the session's compose project:
    the gate serves its own project only."""
    b_app = project.containers(f"{project.name}-b")["app"]
    original = (project.root / ".sidecar" / "bridge.yaml").read_text()
    peer = original.replace("containers:\n", f"containers:\n  peer: {b_app.name}\n", 1) + (
        "commands:\n" if "commands:" not in original else "")
    peer = peer.replace("commands:\n", "commands:\n  peer:\n    container: peer\n"
                        "    exec: [sh, -c]\n    workdir: /\n", 1)
    # The user approves that policy in the project (committed, so the session's checkout has
    # it); the project's own policy comes back afterwards.
    bridge_file = project.root / ".sidecar" / "bridge.yaml"
    bridge_file.write_text(peer)
    _git(project.root, "commit", "-qam", "peer", env=project.env)
    trusted = project.run("trust", "--yes")
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    try:
        project.new("e")
    finally:
        _git(project.root, "revert", "--no-edit", "HEAD", env=project.env)
        restored = project.run("trust", "--yes")
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert bridge_file.read_text() == original
    policy = project.exec("e", "cat", "/run/sidecar/policy/bridge.yaml")
    assert f"peer: {b_app.name}" in policy.stdout  # kept as written
    refused = project.exec("e", "peer", "touch /tmp/scoped")
    assert refused.returncode == 125, refused.stdout + refused.stderr
    b_app.reload()
    assert b_app.exec_run(["test", "-e", "/tmp/scoped"]).exit_code == 1
    for exec_id in b_app.attrs.get("ExecIDs") or []:
        config = project.client.api.exec_inspect(exec_id)["ProcessConfig"]
        assert "touch /tmp/scoped" not in config["arguments"]
    removed = project.run("session", "rm", "--force", "e")
    assert removed.returncode == 0, removed.stderr
    del project.sessions["e"]


HEALTH = """
import http.client, json
c = http.client.HTTPConnection("sidecar-broker", 8080, timeout=20)
c.request("GET", "/sidecar-broker/health")
print(json.dumps(json.loads(c.getresponse().read())["credentials"]))
"""


def _broker_holds(project: Project, session: str) -> list[str]:
    """The kinds of credential the session's broker holds, asked from the session's claude
    container (as the agent reaches it)."""
    health = project.exec(session, "python3", "-c", HEALTH)
    assert health.returncode == 0, health.stdout + health.stderr
    return list(json.loads(health.stdout))


def _secret_files(broker: Any) -> dict[str, str]:
    """name -> `ls -ln` line of the broker's secret files (mode, owner, size)."""
    listing = broker.exec_run(["ls", "-ln", "/run/sidecar/broker-secrets"])
    assert listing.exit_code == 0, listing.output
    return {line.split()[-1]: line for line in listing.output.decode().splitlines()
            if line.startswith("-")}


def _claude_env(container: Any) -> dict[str, str]:
    container.reload()
    return dict(item.partition("=")[::2] for item in container.attrs["Config"]["Env"])


def test_a_sessions_broker_holds_the_credential_and_claude_the_placeholder(project: Project
                                                                           ) -> None:
    """`session new` hands the session's own broker the credential of its environment, as
    `sidecar up` does for the main stack; it is nowhere else: not in claude's environment,
    any container's configuration, the session's stored model or its worktree."""
    for session in ("a", "b"):
        compose_project = f"{project.name}-{session}"
        own = project.containers(compose_project)
        assert _broker_holds(project, session) == ["api-key"]
        files = _secret_files(own["sidecar-broker"])
        mode, _, uid, gid, size = files["api-key"].split()[:5]
        assert (mode, uid, gid) == ("-r--------", "65534", "65534"), files
        assert int(size) == len(API_KEY) + 1
        env = _claude_env(own["claude"])
        assert env["ANTHROPIC_API_KEY"] == API_PLACEHOLDER
        assert "CLAUDE_CODE_OAUTH_TOKEN" not in env
        assert env["ANTHROPIC_BASE_URL"] == "http://sidecar-broker:8080"
        for container in own.values():
            assert API_KEY not in json.dumps(container.attrs), container.name
        state = project.root.parent / "state"
        for path in [*state.rglob("*"), *project.sessions[session].rglob("*")]:
            if path.is_file() and not path.is_symlink():
                assert API_KEY.encode() not in path.read_bytes(), path


def test_session_up_hands_over_a_changed_credential_and_restarts_the_broker(
        project: Project) -> None:
    """A running session whose credential changed (an OAuth token instead of the API key):
    `session up` writes it, restarts the session's broker (it reads its secrets at start)
    and gives claude the OAuth placeholder; the next `session up` restarts nothing."""
    compose_project = f"{project.name}-b"
    broker = project.containers(compose_project)["sidecar-broker"]
    started = broker.attrs["State"]["StartedAt"]
    main_broker = project.containers(project.name)["sidecar-broker"]
    main_started = main_broker.attrs["State"]["StartedAt"]
    env = {k: v for k, v in project.env.items() if k != "ANTHROPIC_API_KEY"}
    env["CLAUDE_CODE_OAUTH_TOKEN"] = OAUTH
    up = subprocess.run([project.sidecar, "session", "up", "b"], cwd=project.root, env=env,
                        capture_output=True, text=True, timeout=300, check=False)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"restarted: {compose_project}-sidecar-broker-1 (restarted)" in up.stderr
    assert OAUTH not in up.stdout + up.stderr
    broker.reload()
    assert broker.attrs["State"]["StartedAt"] != started
    assert _broker_holds(project, "b") == ["oauth-token"]
    files = _secret_files(broker)
    assert int(files["oauth-token"].split()[4]) == len(OAUTH) + 1
    assert int(files["api-key"].split()[4]) == 0  # a kind not held is an empty file
    env_now = _claude_env(project.containers(compose_project)["claude"])
    assert env_now["CLAUDE_CODE_OAUTH_TOKEN"] == OAUTH_PLACEHOLDER
    assert "ANTHROPIC_API_KEY" not in env_now
    # Only that session's broker: the main stack's and session a's kept theirs.
    assert _broker_holds(project, "a") == ["api-key"]
    main_broker.reload()
    assert main_broker.attrs["State"]["StartedAt"] == main_started
    # The same credential again: nothing written, nobody restarted.
    broker.reload()
    started = broker.attrs["State"]["StartedAt"]
    again = subprocess.run([project.sidecar, "session", "up", "b"], cwd=project.root, env=env,
                           capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "restarted" not in again.stderr
    broker.reload()
    assert broker.attrs["State"]["StartedAt"] == started
