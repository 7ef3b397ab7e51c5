"""The git files that join the approval and that `sidecar up` mounts read-only (real git)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sidecar_gen.errors import ExitCode
from sidecar_gen.host.git import GitError
from sidecar_gen.trust.gitfiles import find_repository, git_files, hooks_in_tree
from sidecar_gen.trust.record import ApprovalStore


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                           *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    (root / "app").mkdir(parents=True)
    (root / "app" / "compose.yaml").write_text("services: {}\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "one")
    return root


@pytest.fixture
def store(tmp_path: Path) -> ApprovalStore:
    return ApprovalStore(tmp_path / "state")


def test_what_is_protected_and_recorded_in_a_plain_repository(repo: Path, store: ApprovalStore
                                                              ) -> None:
    (repo / "extra.cfg").write_text("[core]\n\tabbrev = 8\n")
    git(repo, "config", "include.path", "../extra.cfg")
    git(repo, "config", "includeIf.onbranch:nowhere/**.path", str(repo.parent / "absent.cfg"))
    found = git_files(repo / "app", store)
    dot = repo / ".git"
    assert list(found.protect) == [dot / "hooks", dot / "info", dot / "config",
                                   repo / "extra.cfg"]
    # The project is a subfolder: files outside it are named by their real path.
    real = repo.resolve()
    assert set(found.states) == {f"{real}/.git/hooks/", f"{real}/.git/info/attributes",
                                 f"{real}/.git/config", f"{real}/.git/config.worktree",
                                 f"{real}/extra.cfg", f"{real.parent}/absent.cfg"}
    absent = sorted(name for name, state in found.states.items() if not state.exists)
    assert absent == [f"{real.parent}/absent.cfg", f"{real}/.git/config.worktree",
                      f"{real}/.git/info/attributes"]


def test_a_hook_an_attribute_or_a_config_entry_changes_the_record_by_name(
        repo: Path, store: ApprovalStore) -> None:
    before = git_files(repo, store).states
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text("#!/bin/sh\ntouch /tmp/pwned\n")
    hook.chmod(0o755)
    (repo / ".git" / "info" / "attributes").write_text("* filter=evil\n")
    git(repo, "config", "filter.evil.smudge", "touch /tmp/pwned")
    after = git_files(repo, store).states
    changed = sorted(name for name in after if after[name].digest != before[name].digest)
    assert changed == [".git/config", ".git/hooks/", ".git/info/attributes"]
    assert "post-checkout 0755 hmac-sha256:" in (after[".git/hooks/"].text or "")
    assert "filter.evil.smudge=touch /tmp/pwned\n" in (after[".git/config"].text or "")


def test_what_git_writes_in_normal_use_is_no_change_and_secrets_are_masked(
        repo: Path, store: ApprovalStore) -> None:
    before = git_files(repo, store).states[".git/config"]
    git(repo, "config", "branch.main.remote", "origin")
    git(repo, "config", "branch.main.merge", "refs/heads/main")
    git(repo, "config", "user.name", "Someone")
    assert git_files(repo, store).states[".git/config"] == before
    git(repo, "remote", "add", "origin", "https://me:ghp_secret123@github.com/me/shop.git")
    git(repo, "config", "http.extraHeader", "Authorization: Bearer xyz")
    text = git_files(repo, store).states[".git/config"].text or ""
    assert "ghp_secret123" not in text and "Bearer xyz" not in text
    assert "remote.origin.url=https://hmac-sha256:" in text
    assert "@github.com/me/shop.git\n" in text


def test_a_fifo_among_the_includes_is_refused_by_name(repo: Path, store: ApprovalStore) -> None:
    os.mkfifo(repo / "trap.cfg")
    git(repo, "config", "include.path", "../trap.cfg")
    with pytest.raises(GitError) as caught:
        git_files(repo, store)
    assert caught.value.message.startswith(f"{repo / 'trap.cfg'}: a git configuration file "
                                           "that is not a regular file")
    assert caught.value.exit_code is ExitCode.USAGE


def test_a_linked_worktree_protects_its_git_file_and_the_shared_repository(
        repo: Path, store: ApprovalStore, tmp_path: Path) -> None:
    git(repo, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "other")
    found = find_repository(tmp_path / "wt")
    assert found is not None
    assert (found.top, found.git_file) == (tmp_path / "wt", tmp_path / "wt" / ".git")
    assert (found.common, found.own) == (repo / ".git", repo / ".git" / "worktrees" / "wt")
    files = git_files(tmp_path / "wt", store)
    assert files.protect[0] == tmp_path / "wt" / ".git"
    assert repo / ".git" / "config" in files.protect
    assert repo / ".git" / "worktrees" in files.protect
    assert files.states[".git"].text == f"gitdir: {found.own}\n"


def test_outside_a_repository_nothing_is_recorded(tmp_path: Path, store: ApprovalStore) -> None:
    (tmp_path / "plain").mkdir()
    if find_repository(tmp_path) is not None:
        pytest.skip("the temporary folder is inside a git repository")
    assert find_repository(tmp_path / "plain") is None
    files = git_files(tmp_path / "plain", store)
    assert (files.protect, files.states) == ((), {})


def test_hooks_path_inside_the_work_tree_is_reported(repo: Path) -> None:
    assert hooks_in_tree(repo) is None
    git(repo, "config", "core.hooksPath", ".husky")
    assert hooks_in_tree(repo / "app") == (repo / ".husky").resolve()
    git(repo, "config", "core.hooksPath", str(repo.parent / "hooks-elsewhere"))
    assert hooks_in_tree(repo) is None
    git(repo, "config", "core.hooksPath", ".git/hooks")
    assert hooks_in_tree(repo) is None
