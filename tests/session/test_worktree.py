"""A session's worktree, branch and copied files, with the real git."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from sidecar_gen.errors import ExitCode
from sidecar_gen.session.store import SessionError
from sidecar_gen.session.worktree import (
    add_worktree,
    copy_missing,
    remove_worktree,
    repo_toplevel,
    stack_files,
    uncommitted,
)


def run_git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                             *args], cwd=cwd, capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    (root / "app").mkdir(parents=True)
    (root / "app" / "compose.yaml").write_text("services: {php: {image: php}}\n")
    (root / "app" / "index.php").write_text("<?php\n")
    (root / ".gitignore").write_text(".env\n")
    run_git(root, "init", "-q", "-b", "main")
    run_git(root, "add", "-A")
    run_git(root, "commit", "-qm", "one")
    run_git(root, "tag", "v1")
    (root / "app" / "index.php").write_text("<?php echo 2;\n")
    run_git(root, "commit", "-qam", "two")
    return root


def test_toplevel_from_a_subfolder_and_outside_a_repository(repo: Path, tmp_path: Path) -> None:
    assert repo_toplevel(repo / "app") == repo.resolve()
    outside = tmp_path / "plain"
    outside.mkdir()
    with pytest.raises(SessionError, match="is not in a git repository") as caught:
        repo_toplevel(outside)
    assert caught.value.exit_code is ExitCode.USAGE


def test_new_branch_from_head_or_from_a_ref(repo: Path, tmp_path: Path) -> None:
    head = run_git(repo, "rev-parse", "HEAD")
    tree = add_worktree(repo, tmp_path / "wt" / "a", "sidecar/a", None)
    assert tree.base == head
    assert tree.common_dir == (repo / ".git").resolve()
    assert tree.git_dir.parent == (repo / ".git" / "worktrees").resolve()
    assert tree.new_branch
    assert run_git(tmp_path / "wt" / "a", "branch", "--show-current") == "sidecar/a"
    v1 = run_git(repo, "rev-parse", "v1^{commit}")
    assert add_worktree(repo, tmp_path / "wt" / "b", "sidecar/b", "v1").base == v1
    assert (tmp_path / "wt" / "b" / "app" / "index.php").read_text() == "<?php\n"


def test_an_existing_branch_is_continued_but_not_restarted(repo: Path, tmp_path: Path) -> None:
    first = tmp_path / "wt" / "a"
    add_worktree(repo, first, "sidecar/a", None)
    (first / "new.txt").write_text("work\n")
    run_git(first, "add", "new.txt")
    run_git(first, "commit", "-qm", "session work")
    work = run_git(first, "rev-parse", "HEAD")
    remove_worktree(repo, first)
    assert not first.exists()
    assert run_git(repo, "rev-parse", "sidecar/a") == work  # the branch outlives the worktree
    again = add_worktree(repo, first, "sidecar/a", None)
    assert (again.base, again.new_branch) == (work, False)
    remove_worktree(repo, first)
    with pytest.raises(SessionError, match="branch sidecar/a exists") as caught:
        add_worktree(repo, first, "sidecar/a", "v1")
    assert caught.value.exit_code is ExitCode.USAGE


@pytest.mark.parametrize(("ref", "message"), [
    ("no-such-ref", "has no commit 'no-such-ref'"),
    ("HEAD:app", "has no commit"),  # a tree, not a commit
])
def test_bad_refs(repo: Path, tmp_path: Path, ref: str, message: str) -> None:
    with pytest.raises(SessionError, match=message):
        add_worktree(repo, tmp_path / "wt", "sidecar/x", ref)
    assert not (tmp_path / "wt").exists()


def test_an_empty_repository_and_a_taken_folder(tmp_path: Path, repo: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    run_git(empty, "init", "-q")
    with pytest.raises(SessionError, match="has no commit yet"):
        add_worktree(empty, tmp_path / "wt-empty", "sidecar/x", None)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file").write_text("mine")
    with pytest.raises(SessionError, match="exists and is not empty"):
        add_worktree(repo, taken, "sidecar/x", None)
    assert (taken / "file").read_text() == "mine"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_uncommitted_leaves_out_unchanged_copied_files(repo: Path, tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    gd = add_worktree(repo, wt, "sidecar/a", None).git_dir
    assert uncommitted(wt, gd, {}, "app") == []
    (wt / "app" / "settings.env").write_text("A=1\n")  # copied in by the session, unchanged
    (wt / "app" / "edited.env").write_text("B=2\n")  # copied in, then changed
    (wt / ".env").write_text("C=3\n")  # ignored by .gitignore: never "uncommitted"
    copied = {"settings.env": sha("A=1\n"), "edited.env": sha("B=1\n")}
    assert uncommitted(wt, gd, copied, "app") == ["?? app/edited.env"]
    (wt / "app" / "index.php").write_text("<?php echo 3;\n")
    (wt / "app" / "dir").mkdir()
    (wt / "app" / "dir" / "new.php").write_text("x")
    run_git(wt, "mv", "app/compose.yaml", "app/compose.yml")
    assert sorted(uncommitted(wt, gd, copied, "app")) == [
        "?? app/dir/new.php", "?? app/edited.env", "M app/index.php",
        "R app/compose.yml"]


def test_stack_files_are_what_compose_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    for name in ("COMPOSE_FILE", "COMPOSE_PATH_SEPARATOR"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "p"
    files = {
        ".env": "COMPOSE_FILE=base.yaml:extra.yaml\nSECRET_FILE=secret.txt\n",
        "base.yaml": (
            "include:\n  - path: inc/more.yaml\n    env_file: inc/more.env\n"
            "services:\n  php:\n    image: php\n    env_file: [php.env, {path: opt.env}]\n"
            "    extends: {file: common.yaml, service: base}\n"
            "    volumes:\n      - ./php.ini:/etc/php.ini\n      - ./src:/src\n"
            "      - {type: bind, source: ./nginx.conf, target: /etc/nginx.conf}\n"
            "      - ../outside.txt:/o\n      - data:/data\n"
            "secrets:\n  pw:\n    file: ./${SECRET_FILE}\n"),
        "extra.yaml": "services: {db: {image: db, env_file: db.env}}\n",
        "inc/more.yaml": "services: {cache: {image: redis, env_file: cache.env}}\n",
        "inc/more.env": "", "inc/cache.env": "", "common.yaml": "services: {base: {}}\n",
        "php.env": "", "opt.env": "", "db.env": "", "php.ini": "", "nginx.conf": "",
        "secret.txt": "", "compose.yaml": "services: {}\n", "unrelated.env": "",
        ".sidecar/bridge.yaml": "", ".sidecar/allowed-domains.txt": "",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "src").mkdir()
    (tmp_path / "outside.txt").write_text("")
    found = stack_files(root, {})
    assert sorted(found) == sorted([
        ".env", ".sidecar/bridge.yaml", ".sidecar/allowed-domains.txt", "base.yaml",
        "extra.yaml", "inc/more.yaml", "inc/more.env", "inc/cache.env", "common.yaml",
        "php.env", "opt.env", "db.env", "php.ini", "nginx.conf", "secret.txt"])
    # Without COMPOSE_FILE: the default file and its override files.
    (root / ".env").write_text("")
    (root / "compose.override.yaml").write_text("services: {x: {env_file: x.env}}\n")
    (root / "x.env").write_text("")
    assert sorted(stack_files(root, {})) == sorted([
        ".env", ".sidecar/bridge.yaml", ".sidecar/allowed-domains.txt", "compose.yaml",
        "compose.override.yaml", "x.env"])
    # The caller's environment wins over .env, as in compose.
    assert "extra.yaml" in stack_files(root, {"COMPOSE_FILE": "base.yaml,extra.yaml",
                                              "COMPOSE_PATH_SEPARATOR": ","})


def test_copy_missing_copies_only_what_the_checkout_lacks(tmp_path: Path) -> None:
    source, target = tmp_path / "s", tmp_path / "t"
    (source / "conf").mkdir(parents=True)
    target.mkdir()
    (source / ".env").write_text("SECRET=1\n")
    os.chmod(source / ".env", 0o600)
    (source / "conf" / "app.env").write_text("A=1\n")
    (source / "tracked.env").write_text("mine\n")
    (target / "tracked.env").write_text("the branch's\n")
    (source / "link.env").symlink_to("/etc/passwd")
    copied = copy_missing(source, target, [".env", "conf/app.env", "tracked.env", "link.env",
                                           "missing.env"])
    assert copied == {".env": sha("SECRET=1\n"), "conf/app.env": sha("A=1\n")}
    assert (target / ".env").stat().st_mode & 0o777 == 0o600
    assert (target / "tracked.env").read_text() == "the branch's\n"
    assert not (target / "link.env").exists()


def test_copy_missing_never_goes_through_a_link(tmp_path: Path) -> None:
    source, target, elsewhere = tmp_path / "s", tmp_path / "t", tmp_path / "elsewhere"
    for folder in (source / "conf", target, elsewhere, tmp_path / "secrets"):
        folder.mkdir(parents=True)
    (source / "conf" / "app.env").write_text("A=1\n")
    (tmp_path / "secrets" / "key.env").write_text("KEY=private\n")
    (source / "keys").symlink_to(tmp_path / "secrets")
    # A commit of the session's branch can hold a link where the project has a folder.
    (target / "conf").symlink_to(elsewhere)
    assert copy_missing(source, target, ["conf/app.env", "keys/key.env", "../s/conf/app.env"]
                        ) == {}
    assert list(elsewhere.iterdir()) == []
    assert not (target / "keys").exists()


def test_a_rewritten_git_file_runs_nothing_and_changes_nothing(repo: Path, tmp_path: Path
                                                              ) -> None:
    """The agent owns the worktree: it can point its `.git` file at a git directory of its
    own whose config runs a program. Our git commands must not follow it."""
    wt = tmp_path / "wt"
    tree = add_worktree(repo, wt, "sidecar/a", None)
    fake = wt / "fake"
    subprocess.run(["cp", "-r", str(repo / ".git"), str(fake)], check=True)
    marker = tmp_path / "PWNED"
    with (fake / "config").open("a") as config:
        config.write(f'[core]\n\tfsmonitor = "touch {marker}; false"\n'
                     f"\thooksPath = {tmp_path}/hooks\n")
    (wt / ".git").write_text(f"gitdir: {fake}\n")
    (wt / "app" / "index.php").write_text("changed\n")
    status = uncommitted(wt, tree.git_dir, {}, "app")
    assert "M app/index.php" in status  # the real state, read from the recorded git dir
    assert all(line == "M app/index.php" or line.startswith(("?? fake/", "?? .git"))
               for line in status), status
    assert not marker.exists()
    remove_worktree(repo, wt)
    assert not wt.exists() and not marker.exists()
    assert run_git(repo, "worktree", "list").count("\n") == 0  # pruned
