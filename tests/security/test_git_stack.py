"""Host git and the worktree's owner, on a real engine: a project in a git repository, owned by
PUID:PGID (1234) like a real user's checkout, started by `sidecar up` as root.

- Prevention: as user claude in the claude container, and through a routed command whose
  container mounts the project, writing `.git/config`, a hook or `.git/info/attributes`
  fails, while `git commit` works.
- Detection: a change made outside those mounts (on the host, or by a container that reaches
  `.git` another way) is refused by `up`, `trust` and `session new`, and flagged by `doctor`,
  naming the file.
- Plants the user approved never run through `session new` and `session rm` (a control run of
  plain git shows they work).
- A session made as root belongs to the project's owner: every path of its worktree, and a
  routed command running as PUID writes into it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import unique_name

from security.trust_stack import APP_SH_ROUTE

pytestmark = pytest.mark.slow

PUID = PGID = 1234
SIDECAR = str(Path(sys.executable).parent / "sidecar")

COMPOSE = """\
services:
  app:
    image: {image}
    entrypoint: [sleep]
    command: ["36000"]
    init: true
    healthcheck: {{test: [CMD, "true"], interval: 2s}}
    volumes: ["./:/app"]
"""

BRIDGE = """\
version: "1"
commands:
""" + APP_SH_ROUTE + """\
sidecar:
  project: {project}
  image: {image}
  firewall: {{enabled: true}}
"""

AUTHOR = ["-c", "user.name=agent", "-c", "user.email=agent@example.invalid"]


@dataclass
class GitStack:
    root: Path
    project: str
    env: dict[str, str]
    client: Any

    def sidecar(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SIDECAR, *args], cwd=self.root, env=self.env, timeout=timeout,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)

    def claude(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """A command in the claude container as the agent (user claude)."""
        return subprocess.run(["docker", "compose", "-p", self.project, "exec", "-T", "--user",
                               "claude", "claude", *argv], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=120)

    def routed(self, script: str) -> subprocess.CompletedProcess[str]:
        """`app-sh -c SCRIPT` typed by the agent: runs in `app` as PUID, which mounts the
        project read-write."""
        return self.claude("app-sh", "-c", script)

    def host_git(self, *args: str, cwd: Path | None = None) -> str:
        """Plain git on the host, as the project's owner (the user)."""
        env = {k: v for k, v in self.env.items() if not k.startswith("GIT_")}
        return subprocess.run(["git", *AUTHOR, *args], cwd=cwd or self.root, env=env,
                              user=PUID, group=PGID, extra_groups=[], check=True,
                              capture_output=True, text=True, timeout=60).stdout

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.routed("true")
            if last.returncode == 0:
                return
            time.sleep(0.5)
        raise AssertionError(f"the stack never became ready: {last}")

    def chown(self, *paths: Path) -> None:
        for path in paths:
            for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
                os.lchown(item, PUID, PGID)


@pytest.fixture(scope="module")
def stack(docker_client: Any, claude_image: str, compose_cli: list[str]) -> Iterator[GitStack]:
    # Not pytest's temporary folder (root's only): git runs as the project's owner, who
    # must be able to reach it, as in a real home folder.
    base = Path(tempfile.mkdtemp(prefix="sidecar-gitstack-"))
    base.chmod(0o755)
    project = unique_name("gitstack")
    root = base / project
    (root / ".sidecar").mkdir(parents=True)
    (root / "compose.yaml").write_text(COMPOSE.format(image=claude_image))
    (root / ".sidecar" / "bridge.yaml").write_text(BRIDGE.format(project=project,
                                                                 image=claude_image))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COMPOSE_", "GIT_"))}
    env.update({"PUID": str(PUID), "PGID": str(PGID), "COMPOSE_PROJECT_NAME": project,
                "XDG_STATE_HOME": str(base / "state"), "NO_COLOR": "1"})
    stack = GitStack(root, project, env, docker_client)
    try:
        rendered = stack.sidecar("render")
        assert rendered.returncode == 0, rendered.stdout + rendered.stderr
        (root / ".env").write_text("APP_KEY=not-in-git\n")
        (root / ".gitignore").write_text(".env\n")
        stack.chown(root)
        stack.host_git("init", "-q", "-b", "main")
        stack.host_git("add", "-A")
        stack.host_git("commit", "-qm", "the project")
        up = stack.sidecar("up")
        assert up.returncode == 0, up.stdout + up.stderr
        stack.wait_ready()
        yield stack
    finally:
        for name in ("s", "p"):
            stack.sidecar("session", "rm", "--force", name)
        subprocess.run(["docker", "compose", "-p", project, "down", "-v", "--remove-orphans",
                        "-t", "1"], cwd=root, env=env, capture_output=True, timeout=300)
        shutil.rmtree(base, ignore_errors=True)


def snapshot_git(root: Path) -> dict[str, bytes]:
    """The bytes of the execution-relevant git files, hooks listed by name."""
    out = {".git/config": (root / ".git" / "config").read_bytes()}
    out[".git/hooks"] = "\n".join(sorted(os.listdir(root / ".git" / "hooks"))).encode()
    attributes = root / ".git" / "info" / "attributes"
    out[".git/info/attributes"] = attributes.read_bytes() if attributes.exists() else b""
    return out


def test_the_agent_cannot_write_what_git_runs_but_commits_work(stack: GitStack) -> None:
    before = snapshot_git(stack.root)
    writes = {
        "config": "printf '[core]\\n\\tfsmonitor = touch /tmp/x\\n' >> {d}/.git/config",
        "git config": "git -C {d} config user.name agent",
        "hook": "printf '#!/bin/sh\\n' > {d}/.git/hooks/post-checkout",
        "attributes": "echo '* filter=x' > {d}/.git/info/attributes",
        "hooks folder": "mv {d}/.git/hooks {d}/.git/hooks.old",
        "config swap": "cp {d}/.git/config /tmp/c && mv /tmp/c {d}/.git/config",
    }
    for what, script in writes.items():
        as_claude = stack.claude("sh", "-c", script.format(d="/workspace"))
        routed = stack.routed(script.format(d="/app"))
        assert as_claude.returncode != 0, (what, as_claude)
        assert routed.returncode != 0, (what, routed)
    assert snapshot_git(stack.root) == before  # the effect on the host: nothing changed
    # git itself says why its config cannot be written.
    refused = stack.claude("git", "-C", "/workspace", "config", "user.name", "agent")
    assert "could not lock config file" in refused.stderr or \
        "Read-only file system" in refused.stderr or "Device or resource busy" in \
        refused.stderr, refused.stderr
    # Commits work, from the claude container and through the routed service.
    head = stack.host_git("rev-parse", "HEAD").strip()
    first = stack.claude("sh", "-c", "cd /workspace && echo a > from-claude.txt && git add "
                         f"from-claude.txt && git {' '.join(AUTHOR)} commit -qm claude")
    assert first.returncode == 0, first
    second = stack.routed("echo b > from-app.txt && git add from-app.txt && "
                          f"git {' '.join(AUTHOR)} commit -qm app")
    assert second.returncode == 0, second
    log = stack.host_git("log", "--format=%s", f"{head}..HEAD").split()
    assert log == ["app", "claude"]
    assert snapshot_git(stack.root) == before
    # The mounts are what `sidecar up` added: read-only, where .git appears in each service.
    claude = stack.client.containers.list(filters={"label": [
        f"com.docker.compose.project={stack.project}", "com.docker.compose.service=claude"]})[0]
    ro = {m["Destination"] for m in claude.attrs["Mounts"] if not m["RW"]}
    assert {"/workspace/.git/config", "/workspace/.git/hooks",
            "/workspace/.git/info"} <= ro, ro
    stack.host_git("reset", "-q", "--hard", head)


def _refusals(stack: GitStack, name: str, line: str) -> None:
    """`up`, `trust`, `session new` refuse, and doctor flags, naming `name`; `line` is in the
    diff `up` and `trust` print."""
    up = stack.sidecar("up")
    assert up.returncode == 1, up
    assert f"changed  {name}" in up.stdout and line in up.stdout, up.stdout
    assert up.stderr.strip().splitlines()[-1].startswith(
        f"sidecar: error: changed since you approved it: {name}"), up.stderr
    trust = stack.sidecar("trust")  # no terminal, no --yes: shows it, approves nothing
    assert trust.returncode == 2 and line in trust.stdout, trust
    new = stack.sidecar("session", "new", "s")
    assert new.returncode == 1, new
    assert f"the project changed since you approved it ({name})" in new.stderr, new.stderr
    assert not (stack.root.parent / f"{stack.root.name}.sessions" / "s").exists()
    doctor = stack.sidecar("doctor", "--format", "json")
    checks = {c["check"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["approval"]["status"] == "fail"
    assert name in checks["approval"]["message"]


def test_a_change_made_outside_the_mounts_is_refused_naming_the_file(stack: GitStack) -> None:
    config = stack.root / ".git" / "config"
    original = config.read_bytes()
    try:
        with config.open("a") as handle:
            handle.write('[filter "evil"]\n\tsmudge = touch /tmp/pwned\n')
        _refusals(stack, ".git/config", "+filter.evil.smudge=touch /tmp/pwned")
    finally:
        config.write_bytes(original)
    hook = stack.root / ".git" / "hooks" / "pre-commit"
    try:
        hook.write_text("#!/bin/sh\nexit 0\n")
        hook.chmod(0o755)
        stack.chown(hook)
        _refusals(stack, ".git/hooks/", "+pre-commit 0755 hmac-sha256:")
    finally:
        hook.unlink()
    up = stack.sidecar("up")  # as approved again: starts
    assert up.returncode == 0, up.stdout + up.stderr
    # What git itself writes in normal use is no change: a branch's upstream, the author.
    stack.host_git("config", "branch.main.remote", "origin")
    stack.host_git("config", "user.name", "Someone Else")
    try:
        assert stack.sidecar("up").returncode == 0
    finally:
        config.write_bytes(original)


def _plant_everything(root: Path, markers: Path) -> None:
    """Every plant of test_host_git.py at once, from the host."""
    def marker(name: str) -> str:
        return str(markers / name)

    (root / "evil.inc").write_text(f'[filter "inc"]\n\tsmudge = "touch {marker("include")};'
                                   ' cat"\n')
    (root / "cond.inc").write_text(f'[filter "cond"]\n\tsmudge = "touch {marker("includeif")};'
                                   ' cat"\n')
    with (root / ".git" / "config").open("a") as handle:
        handle.write(
            f'[filter "evil"]\n\tsmudge = "touch {marker("filter")}; cat"\n'
            f'\tclean = "touch {marker("filter")}; cat"\n\trequired = true\n'
            f'[core]\n\tfsmonitor = "touch {marker("fsmonitor")}; false"\n'
            f'\tpager = "touch {marker("pager")}; cat"\n'
            f'\tsshCommand = "touch {marker("ssh")}; false"\n'
            f'[diff]\n\texternal = "touch {marker("extdiff")}; true"\n'
            f'[diff "tc"]\n\ttextconv = "touch {marker("textconv")}; cat"\n'
            f'[credential]\n\thelper = "!touch {marker("credential")}; true"\n'
            "[include]\n\tpath = ../evil.inc\n"
            '[includeIf "onbranch:sidecar/**"]\n\tpath = ../cond.inc\n')
    (root / ".git" / "info" / "attributes").write_text(
        "compose.yaml filter=evil diff=tc\n.gitignore filter=inc\n.sidecar/** filter=cond\n")
    hook = root / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {marker('hook')}\n")
    hook.chmod(0o755)


def test_approved_plants_never_run_through_session_new_and_rm(stack: GitStack) -> None:
    """The user approved a repository that carries them (or they were there before the first
    approval): sidecar's own git runs none of them."""
    markers = stack.root.parent / "markers"
    markers.mkdir(mode=0o777, exist_ok=True)
    markers.chmod(0o777)
    originals = snapshot_git(stack.root)
    try:
        _plant_everything(stack.root, markers)
        stack.chown(stack.root / ".git", stack.root / "evil.inc", stack.root / "cond.inc")
        trusted = stack.sidecar("trust", "--yes")
        assert trusted.returncode == 0, trusted
        new = stack.sidecar("session", "new", "p")
        assert new.returncode == 0, new.stdout + new.stderr
        worktree = stack.root.parent / f"{stack.root.name}.sessions" / "p"
        (worktree / "compose.yaml").write_text("changed\n")  # status sees a change
        rm = stack.sidecar("session", "rm", "--force", "p")
        assert rm.returncode == 0, rm.stdout + rm.stderr
        assert not worktree.exists()
        assert sorted(os.listdir(markers)) == []
        # The control: plain git, as the user, does what sidecar did: the plants fire.
        control = stack.root.parent / "control-wt"
        control.mkdir()
        stack.chown(control)
        stack.host_git("worktree", "add", "-q", "-b", "sidecar/control", str(control))
        (control / "compose.yaml").write_text("changed\n")
        stack.host_git("status", cwd=control)
        shutil.rmtree(control)  # its folder is in root's: git as the user cannot remove it
        stack.host_git("worktree", "prune")
        assert {"filter", "include", "includeif", "hook", "fsmonitor"} <= set(
            os.listdir(markers))
    finally:
        (stack.root / ".git" / "config").write_bytes(originals[".git/config"])
        (stack.root / ".git" / "info" / "attributes").unlink(missing_ok=True)
        (stack.root / ".git" / "hooks" / "post-checkout").unlink(missing_ok=True)
        for name in ("evil.inc", "cond.inc"):
            (stack.root / name).unlink(missing_ok=True)
        subprocess.run(["git", "-C", str(stack.root), "-c", "safe.directory=*", "branch",
                        "-D", "sidecar/control", "sidecar/p"], capture_output=True)
        shutil.rmtree(markers, ignore_errors=True)
        assert stack.sidecar("trust", "--yes").returncode == 0


def test_a_session_made_as_root_belongs_to_the_projects_owner(stack: GitStack) -> None:
    assert os.geteuid() == 0, "the suite runs as root (sidecar run by root, project by 1234)"
    new = stack.sidecar("session", "new", "s")
    assert new.returncode == 0, new.stdout + new.stderr
    worktree = stack.root.parent / f"{stack.root.name}.sessions" / "s"
    try:
        paths = [worktree.parent, worktree, *worktree.rglob("*")]
        assert (worktree / ".env").exists()  # copied in by sidecar, not checked out
        wrong = {str(p): (p.lstat().st_uid, p.lstat().st_gid) for p in paths
                 if (p.lstat().st_uid, p.lstat().st_gid) != (PUID, PGID)}
        assert wrong == {}
        # A routed command running as PUID writes into it: a new file, a checked-out file,
        # the copied .env, a new folder.
        script = ("id -u && echo new > new.txt && echo more >> compose.yaml && "
                  "echo B=2 >> .env && mkdir -p made/here && touch made/here/x")
        ran = stack.sidecar("session", "exec", "s", "--", "app-sh", "-c", script)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert ran.stdout.split()[0] == str(PUID)
        assert (worktree / "new.txt").read_text() == "new\n"
        assert (worktree / ".env").read_text().endswith("B=2\n")
        made = worktree / "made" / "here" / "x"
        assert (made.stat().st_uid, made.stat().st_gid) == (PUID, PGID)
    finally:
        rm = stack.sidecar("session", "rm", "--force", "s")
        assert rm.returncode == 0, rm.stdout + rm.stderr
