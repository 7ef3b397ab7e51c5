"""A repository's git configuration runs nothing on the host when sidecar
runs git (real git, real files; no engine needed).

The agent writes `.git/config`, `.git/info/attributes`, hooks and files the configuration
includes (directly, or through a routed command's container). Each plant below tries to write
a marker file on the host. For each one, a control run of plain git with the same plant writes
the marker (so the test can fail), and the same command through `hostgit.run`, and every git
call a session makes (`session.worktree`: toplevel, worktree add, status, worktree remove, branch
deletion), does not.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidecar_gen.errors import ExitCode
from sidecar_gen.host import git as hostgit
from sidecar_gen.host import process as hostproc
from sidecar_gen.session import worktree as worktrees

OWNER = 1234  # a project folder owned by another user than the one running sidecar (root)
FILES = ("a.txt", "b.txt", "c.txt", "d.txt")


def git(cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True,
        input_: str | None = None, user: int | None = None) -> subprocess.CompletedProcess[str]:
    """Plain git, as a user's shell runs it (the control)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    base.update({"GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": "t", "GIT_COMMITTER_NAME": "t",
                 "GIT_AUTHOR_EMAIL": "t@example.invalid",
                 "GIT_COMMITTER_EMAIL": "t@example.invalid"})
    extra = {} if user is None else {"user": user, "group": user, "extra_groups": []}
    return subprocess.run(["git", *args], cwd=cwd, env={**base, **(env or {})}, check=check,
                          capture_output=True, text=True, input=input_,
                          timeout=60, **extra)  # type: ignore[call-overload]


@dataclass
class Repo:
    root: Path
    markers: Path

    def marker(self, name: str) -> str:
        return str(self.markers / name)

    def fired(self) -> list[str]:
        return sorted(os.listdir(self.markers))

    def config(self, text: str) -> None:
        with (self.root / ".git" / "config").open("a") as handle:
            handle.write(text)

    def attributes(self, line: str) -> None:
        with (self.root / ".git" / "info" / "attributes").open("a") as handle:
            handle.write(line + "\n")


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A folder every user can traverse (pytest's own is root's only): git runs as the
    project's owner when the project is another user's."""
    folder = Path(tempfile.mkdtemp(prefix="sidecar-hostgit-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def make_repo(base: Path, owner: int | None = None) -> Repo:
    root, markers = base / "project", base / "markers"
    root.mkdir(parents=True)
    markers.mkdir(mode=0o777)
    markers.chmod(0o777)
    for name in FILES:
        (root / name).write_text(f"{name}\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "one")
    (root / ".git" / "info").mkdir(exist_ok=True)
    if owner is not None:
        for path in [root, *root.rglob("*")]:
            os.lchown(path, owner, owner)
    return Repo(root, markers)


# --- the plants: (what to write, a plain git command that fires it) ------------------------

def plant_filter(r: Repo) -> None:
    r.config(f'[filter "evil"]\n\tsmudge = "touch {r.marker("filter")}; cat"\n'
             f'\tclean = "touch {r.marker("filter")}; cat"\n\trequired = true\n')
    r.attributes("a.txt filter=evil")


def plant_process_filter(r: Repo) -> None:
    r.config(f'[filter "proc"]\n\tprocess = "touch {r.marker("process")}"\n')
    r.attributes("d.txt filter=proc")


def plant_fsmonitor(r: Repo) -> None:
    r.config(f'[core]\n\tfsmonitor = "touch {r.marker("fsmonitor")}; false"\n')


def plant_hook(r: Repo) -> None:
    hook = r.root / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {r.marker('hook')}\n")
    hook.chmod(0o755)


def plant_include(r: Repo) -> None:
    # A file in the work tree (the agent's to write) included from .git/config.
    (r.root / "evil.inc").write_text(
        f'[filter "inc"]\n\tsmudge = "touch {r.marker("include")}; cat"\n')
    r.config("[include]\n\tpath = ../evil.inc\n")
    r.attributes("b.txt filter=inc")


def plant_include_if(r: Repo) -> None:
    # Only true on a session's branch: a listing made on main would not see it.
    (r.root / "cond.inc").write_text(
        f'[filter "cond"]\n\tsmudge = "touch {r.marker("includeif")}; cat"\n')
    r.config('[includeIf "onbranch:sidecar/**"]\n\tpath = ../cond.inc\n')
    r.attributes("c.txt filter=cond")


def plant_external_diff(r: Repo) -> None:
    r.config(f'[diff]\n\texternal = "touch {r.marker("extdiff")}; true"\n')


def plant_textconv(r: Repo) -> None:
    r.config(f'[diff "tc"]\n\ttextconv = "touch {r.marker("textconv")}; cat"\n')
    r.attributes("a.txt diff=tc")


def plant_pager(r: Repo) -> None:
    r.config(f'[core]\n\tpager = "touch {r.marker("pager")}; cat"\n'
             f'[pager]\n\tlog = "touch {r.marker("pager")}; cat"\n')


def plant_ssh(r: Repo) -> None:
    r.config(f'[core]\n\tsshCommand = "touch {r.marker("ssh")}; false"\n'
             '[remote "origin"]\n\turl = ssh://git@example.invalid/shop.git\n')


def plant_credential(r: Repo) -> None:
    r.config(f'[credential]\n\thelper = "!touch {r.marker("credential")}; true"\n'
             f'[credential "https://example.invalid"]\n'
             f'\thelper = "!touch {r.marker("credential")}; true"\n')


def plant_ext_transport(r: Repo) -> None:
    r.config(f'[remote "evil"]\n\turl = "ext::sh -c touch% {r.marker("ext")}"\n'
             '[protocol "ext"]\n\tallow = always\n')


def plant_merge_driver(r: Repo) -> None:
    r.config(f'[merge "m"]\n\tdriver = "touch {r.marker("merge")}; false"\n')
    r.attributes("b.txt merge=m")
    git(r.root, "checkout", "-q", "-b", "other")
    (r.root / "b.txt").write_text("other\n")
    git(r.root, "commit", "-qam", "other")
    git(r.root, "checkout", "-q", "main")
    (r.root / "b.txt").write_text("main\n")
    git(r.root, "commit", "-qam", "main")


def plant_gpg(r: Repo) -> None:
    script = r.root.parent / "gpg-program"
    r.config(f'[gpg]\n\tprogram = "{script}"\n[commit]\n\tgpgSign = true\n')
    script.write_text(f"#!/bin/sh\ntouch {r.marker('gpg')}\nexit 1\n")
    script.chmod(0o755)


def checkout(r: Repo) -> tuple[str, ...]:
    for name in FILES:
        (r.root / name).unlink()
    return ("checkout", "--", ".")


def modified(args: tuple[str, ...]) -> Callable[[Repo], tuple[str, ...]]:
    def prepare(r: Repo) -> tuple[str, ...]:
        (r.root / "a.txt").write_text("changed\n")
        return args
    return prepare


@dataclass(frozen=True)
class Plant:
    name: str
    plant: Callable[[Repo], None]
    trigger: Callable[[Repo], tuple[str, ...]]
    markers: tuple[str, ...]
    stdin: str | None = None


PLANTS = [
    Plant("filter", plant_filter, checkout, ("filter",)),
    Plant("process filter", plant_process_filter, checkout, ("process",)),
    Plant("fsmonitor", plant_fsmonitor, modified(("status",)), ("fsmonitor",)),
    Plant("hook", plant_hook, lambda r: ("checkout", "-q", "-b", "x"), ("hook",)),
    Plant("include", plant_include, checkout, ("include",)),
    Plant("includeIf", plant_include_if,
          lambda r: ("worktree", "add", "-q", "-b", "sidecar/x", "../worktree"), ("includeif",)),
    Plant("external diff", plant_external_diff, modified(("diff",)), ("extdiff",)),
    Plant("textconv", plant_textconv, modified(("diff",)), ("textconv",)),
    Plant("sshCommand", plant_ssh, lambda r: ("ls-remote", "origin"), ("ssh",)),
    Plant("credential helper", plant_credential, lambda r: ("credential", "fill"),
          ("credential",), "protocol=https\nhost=example.invalid\n\n"),
    Plant("ext transport", plant_ext_transport, lambda r: ("ls-remote", "evil"), ("ext",)),
    Plant("merge driver", plant_merge_driver, lambda r: ("merge", "-q", "other"), ("merge",)),
    Plant("gpg program", plant_gpg, lambda r: ("commit", "--allow-empty", "-qm", "s"),
          ("gpg",)),
]


@pytest.mark.parametrize("plant", PLANTS, ids=lambda p: p.name)
def test_each_plant_fires_with_plain_git_and_never_through_hostgit(tmp_path: Path,
                                                                   plant: Plant) -> None:
    control = make_repo(tmp_path / "control")
    plant.plant(control)
    git(control.root, *plant.trigger(control), check=False, input_=plant.stdin)
    assert control.fired() == sorted(plant.markers)  # the plant works

    ours = make_repo(tmp_path / "ours")
    plant.plant(ours)
    args = plant.trigger(ours)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_COMMITTER_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    hostgit.run(hostgit.Place(ours.root), *args, check=False, input_text=plant.stdin,
                environ={**os.environ, **env})
    assert ours.fired() == []


def run_in_pty(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Run `argv` with a terminal as its stdin and stdout (git pages only to a terminal)."""
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=follower, stdout=follower,
                                   stderr=follower)
        os.close(follower)
        while True:
            try:
                if not os.read(leader, 4096):
                    break
            except OSError:
                break  # the terminal closed: the process is done
        process.wait(timeout=30)
    finally:
        os.close(leader)


def test_a_pager_runs_for_plain_git_on_a_terminal_and_never_with_hostgit_env(
        tmp_path: Path) -> None:
    control = make_repo(tmp_path / "control")
    plant_pager(control)
    env = {**os.environ, "TERM": "xterm"}
    env.pop("GIT_PAGER", None)
    env.pop("PAGER", None)
    run_in_pty(["git", "log", "-1"], control.root, env)
    assert control.fired() == ["pager"]
    ours = make_repo(tmp_path / "ours")
    plant_pager(ours)
    safe = hostgit.safe_env(hostgit.Place(ours.root), environ={**env, "TERM": "xterm"})
    run_in_pty(["git", "log", "-1"], ours.root, safe)
    assert ours.fired() == []


def test_a_fifo_named_by_an_include_is_refused_by_name_instead_of_hanging_git(
        tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    os.mkfifo(repo.root / "trap.inc")
    repo.config("[includeIf \"gitdir:/nowhere/\"]\n\tpath = ../trap.inc\n")
    with pytest.raises(hostgit.GitError) as caught:
        hostgit.run(hostgit.Place(repo.root), "status")
    assert caught.value.message.startswith(f"{repo.root / 'trap.inc'}: a git configuration "
                                           "file that is not a regular file")
    assert caught.value.exit_code is ExitCode.USAGE


def test_a_driver_name_git_cannot_take_on_its_command_line_is_still_neutralized(
        tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.config(f'[filter "a=b.c"]\n\tsmudge = "touch {repo.marker("odd")}; cat"\n')
    repo.attributes("* filter=a=b.c")
    git(repo.root, *checkout(repo), check=False)
    assert repo.fired() == ["odd"]
    os.unlink(repo.markers / "odd")
    hostgit.run(hostgit.Place(repo.root), *checkout(repo))
    assert repo.fired() == []
    assert (repo.root / "a.txt").read_text() == "a.txt\n"  # checked out, without the filter


# A process filter that does not speak the protocol stops a checkout: it would hide the others.
ALL = [p for p in PLANTS if p.name not in ("merge driver", "hook", "process filter")]


def plant_all(repo: Repo) -> None:
    for plant in ALL:
        plant.plant(repo)
    plant_hook(repo)
    hook = repo.root / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {repo.marker('hook')}\n")
    for name in ("reference-transaction", "post-index-change"):
        other = repo.root / ".git" / "hooks" / name
        other.write_text(f"#!/bin/sh\ntouch {repo.marker('hook')}\n")
        other.chmod(0o755)


@pytest.mark.parametrize("owner", [None, OWNER], ids=["owned by root", "owned by 1234"])
def test_no_git_call_of_a_session_runs_a_plant(tmp_path: Path, owner: int | None) -> None:
    """Everything at once, through the functions `session new` and `session rm` use; as root
    on a project owned by another user, git runs as that user (and the worktree is theirs)."""
    if owner is not None and os.geteuid() != 0:
        pytest.skip("needs root (the CI runs the suite as root)")
    control = make_repo(tmp_path / "control", owner)
    plant_all(control)
    wt = tmp_path / "control-wt"
    wt.mkdir()
    if owner is not None:
        os.lchown(wt, owner, owner)
    added = git(control.root, "worktree", "add", "-q", "-b", "sidecar/s", str(wt), check=False,
                user=owner)
    assert added.returncode == 0, added.stderr
    (wt / "a.txt").write_text("changed\n")
    git(wt, "status", check=False, user=owner)
    assert set(control.fired()) == {"filter", "hook", "include", "includeif", "fsmonitor"}

    repo = make_repo(tmp_path / "ours", owner)
    plant_all(repo)
    top = worktrees.repo_toplevel(repo.root)
    tree = worktrees.add_worktree(top, tmp_path / "sessions" / "s", "sidecar/s", None)
    (tree.path / "a.txt").write_text("changed\n")
    assert worktrees.uncommitted(tree.path, tree.git_dir, {}) == ["M a.txt"]
    worktrees.copy_missing(repo.root, tree.path, ["evil.inc", "cond.inc"])
    worktrees.remove_worktree(top, tree.path)
    worktrees.git(top, "branch", "-D", "sidecar/s")
    assert repo.fired() == []
    assert not tree.path.exists()


def test_as_root_a_worktree_of_another_users_project_is_entirely_theirs(tmp_path: Path
                                                                        ) -> None:
    """Finding 8 without an engine: every path of the new worktree, and the files a session
    copies into it, belong to the project folder's owner."""
    if os.geteuid() != 0:
        pytest.skip("needs root (the CI runs the suite as root)")
    repo = make_repo(tmp_path, OWNER)
    (repo.root / ".env").write_text("A=1\n")
    (repo.root / "conf").mkdir()
    (repo.root / "conf" / "local.env").write_text("B=2\n")
    os.lchown(repo.root / ".env", OWNER, OWNER)
    target = tmp_path / "elsewhere" / "sessions" / "s"  # its parents are made too
    tree = worktrees.add_worktree(repo.root, target, "sidecar/s", None)
    copied = worktrees.copy_missing(repo.root, tree.path, [".env", "conf/local.env"])
    assert sorted(copied) == [".env", "conf/local.env"]
    paths = [tmp_path / "elsewhere", tmp_path / "elsewhere" / "sessions", *[
        tree.path, *tree.path.rglob("*")], *tree.git_dir.rglob("*")]
    owners = {str(p): (p.lstat().st_uid, p.lstat().st_gid) for p in paths}
    assert {k: v for k, v in owners.items() if v != (OWNER, OWNER)} == {}
    # The owner can change everything in it (what a routed command running as PUID does).
    done = subprocess.run(["sh", "-c", "echo x > new.txt && echo y >> .env && rm b.txt"],
                          cwd=tree.path, user=OWNER, group=OWNER, extra_groups=[],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert hostproc.owner_identity(tree.path) == hostproc.Identity(OWNER, OWNER)
    worktrees.remove_worktree(repo.root, tree.path)
    assert not tree.path.exists()
    shutil.rmtree(tmp_path / "elsewhere")


def test_doctor_warns_when_core_hooks_path_is_in_the_work_tree(tmp_path: Path) -> None:
    """husky's `.husky/`: hooks the agent writes as project files, run by the user's next
    commit on the host. They cannot be made read-only: doctor says so."""
    repo = make_repo(tmp_path)
    (repo.root / "compose.yaml").write_text("services:\n  app:\n    image: busybox\n")
    (repo.root / ".sidecar").mkdir()
    (repo.root / ".sidecar" / "bridge.yaml").write_text(
        'version: "1"\ncommands:\n  app-sh:\n    container: app\n    exec: sh\n')
    sidecar = str(Path(sys.executable).parent / "sidecar")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}

    def doctor() -> dict[str, dict[str, str]]:
        ran = subprocess.run([sidecar, "doctor", "--format", "json"], cwd=repo.root, env=env,
                             capture_output=True, text=True, timeout=300)
        return {c["check"]: c for c in json.loads(ran.stdout)["checks"]}

    assert "git hooks" not in doctor()
    git(repo.root, "config", "core.hooksPath", ".husky")
    check = doctor()["git hooks"]
    assert check["status"] == "warn"
    assert check["message"] == (f"core.hooksPath is {repo.root.resolve()}/.husky, inside the "
                                "work tree: the agent can write the hooks your next commit on "
                                "the host runs")
