"""The git side of a session: its worktree and branch, the untracked files the stack needs,
and what would be lost by removing it.

Every function runs the real `git` and raises `SessionError` with git's own one-line reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar_gen.compose.env import InterpolationError, compose_setup, interpolate
from sidecar_gen.host import git as hostgit
from sidecar_gen.host import process as hostproc
from sidecar_gen.runtime.names import CONFIG_DIR, CONFIG_NAME, DOMAINS_NAME, GENERATED_COMPOSE
from sidecar_gen.session.store import SessionError, usage_error
from sidecar_gen.yamlio import load_text

BRANCH_PREFIX = "sidecar/"
# The generated stack and its inputs: a project that never committed them still has a session.
SIDECAR_FILES = (f"{CONFIG_DIR}/{CONFIG_NAME}", f"{CONFIG_DIR}/{DOMAINS_NAME}",
                 f"{CONFIG_DIR}/{GENERATED_COMPOSE}")


def git(cwd: Path, *args: str, check: bool = True, git_dir: Path | None = None,
        work_tree: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run git in `cwd` (on `git_dir`/`work_tree` when given, instead of what `cwd/.git`
    says) through `hostgit.run`: nothing the repository configures runs, and as root it runs
    as the owner of `cwd`. SessionError carrying git's last line when it fails and `check`."""
    if shutil.which("git") is None:
        raise usage_error("git is not installed: sessions are git worktrees")
    try:
        return hostgit.run(hostgit.Place(cwd, git_dir, work_tree), *args, check=check)
    except hostgit.GitError as exc:
        raise SessionError(exc.message, exit_code=exc.exit_code) from None


def repo_toplevel(directory: Path) -> Path:
    """The root of the git working tree holding `directory`."""
    result = git(directory, "rev-parse", "--show-toplevel", check=False)
    if result.returncode != 0:
        raise usage_error(f"{directory} is not in a git repository: a session is a git "
                          "worktree of the project (git init and commit it first)")
    return Path(result.stdout.strip()).resolve()


def branch_name(name: str) -> str:
    """The branch a session works on."""
    return f"{BRANCH_PREFIX}{name}"


@dataclass(frozen=True)
class Worktree:
    """A worktree as git made it: where its own git directory and the shared one are (read
    from git right after `worktree add`, before anything else could change the `.git` file)."""

    path: Path
    base: str  # the commit it starts from
    git_dir: Path  # <common>/worktrees/<id>
    common_dir: Path  # the repository's .git
    new_branch: bool  # the branch was made for it (an existing one was continued otherwise)


def add_worktree(toplevel: Path, path: Path, branch: str, ref: str | None) -> Worktree:
    """Check out `branch` at `path` (a new branch from `ref`, default HEAD; an existing branch
    continues where it is)."""
    exists = git(toplevel, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}",
                 check=False).returncode == 0
    if exists and ref is not None:
        raise usage_error(f"branch {branch} exists (an earlier session's work): drop --from to "
                          f"continue it, or delete it with `git branch -D {branch}`")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise usage_error(f"{path} exists and is not empty: pass --dir to put the worktree "
                          "elsewhere")
    if exists:
        command = ["worktree", "add", "--quiet", str(path), branch]
    else:
        start = ref or "HEAD"
        found = git(toplevel, "rev-parse", "--verify", "--quiet", f"{start}^{{commit}}",
                    check=False)
        if found.returncode != 0:
            what = "has no commit yet" if ref is None else f"has no commit {ref!r}"
            raise usage_error(f"the repository {toplevel} {what}")
        command = ["worktree", "add", "--quiet", "-b", branch, str(path), found.stdout.strip()]
    # The folder is made here, as the project's owner's: as root, git runs as that owner
    # (`hostgit`), who may not be allowed to create it beside the repository.
    made = make_dirs(path, hostproc.owner_identity(toplevel))
    try:
        git(toplevel, *command)
    except BaseException:
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only while empty: what git made stays for the caller's undo
        raise
    out = git(path, "rev-parse", "HEAD", "--absolute-git-dir", "--git-common-dir").stdout
    base, git_dir, common = out.split("\n")[:3]
    return Worktree(path=path, base=base, git_dir=Path(git_dir),
                    common_dir=(path / common).resolve(), new_branch=not exists)


def remove_worktree(toplevel: Path, path: Path) -> None:
    """Remove the worktree at `path` with everything in it (its branch stays)."""
    if path.exists():
        done = git(toplevel, "worktree", "remove", "--force", "--force", str(path),
                   check=False)
        if done.returncode != 0 and path.exists():
            # git refuses a worktree whose `.git` file no longer points back: it is still
            # ours to delete (rmtree never follows a link out of it).
            shutil.rmtree(path)
    git(toplevel, "worktree", "prune", check=False)


def make_dirs(path: Path, owner: hostproc.Identity | None) -> list[Path]:
    """Create `path` and its missing parents, each given to `owner` when set (a routed
    command running as the project's owner must be able to write what sidecar made); the
    folders made, deepest first."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        folder.mkdir()
        if owner is not None:
            os.lchown(folder, owner.uid, owner.gid)
    return missing


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def uncommitted(worktree: Path, git_dir: Path, copied: Mapping[str, str],
                subdir: str = "") -> list[str]:
    """`git status` lines for the worktree's uncommitted changes (untracked files included,
    ignored ones and changes inside submodules not), leaving out the files the session copied
    in while they are unchanged.

    Runs on the git directory recorded at creation, never on what the worktree's `.git` file
    says now (the agent can write the worktree)."""
    # A submodule's changes would need git run in it, with its own configuration: only a
    # changed submodule commit is reported.
    out = git(worktree, "status", "--porcelain=v1", "-z", "--untracked-files=all",
              "--ignore-submodules=dirty", git_dir=git_dir, work_tree=worktree).stdout
    entries = out.split("\0")
    lines: list[str] = []
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if code[0] in "RC":
            index += 1  # a rename or copy is followed by its source path
        rel = posixpath.relpath(path, subdir) if subdir else path
        if code == "??" and rel in copied:
            try:
                if _sha256(worktree / path) == copied[rel]:
                    continue
            except OSError:
                pass
        lines.append(f"{code.strip()} {path}")
    return lines


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _file_refs(doc: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(files, compose files to read too) a compose document names."""
    files: list[str] = []
    includes: list[str] = []
    for item in _as_list(doc.get("include")):
        if isinstance(item, str):
            includes.append(item)
        elif isinstance(item, dict):
            includes.extend(str(p) for p in _as_list(item.get("path")))
            files.extend(str(p) for p in _as_list(item.get("env_file")))
    for kind in ("secrets", "configs"):
        for spec in (doc.get(kind) or {}).values():
            if isinstance(spec, dict) and spec.get("file"):
                files.append(str(spec["file"]))
    for spec in (doc.get("services") or {}).values():
        if not isinstance(spec, dict):
            continue
        for item in _as_list(spec.get("env_file")):
            path = item.get("path") if isinstance(item, dict) else item
            if path:
                files.append(str(path))
        extends = spec.get("extends")
        if isinstance(extends, dict) and extends.get("file"):
            includes.append(str(extends["file"]))
        for mount in spec.get("volumes") or []:
            source = None
            if isinstance(mount, str) and ":" in mount:
                source = mount.split(":", 1)[0]
            elif isinstance(mount, dict) and mount.get("type") == "bind":
                source = mount.get("source")
            if isinstance(source, str) and source.startswith("."):
                files.append(source)  # a single-file bind (folders are skipped by the caller)
    return files, includes


def _interpolated(data: Any, env: Mapping[str, str]) -> Any:
    if isinstance(data, dict):
        return {k: _interpolated(v, env) for k, v in data.items()}
    if isinstance(data, list):
        return [_interpolated(v, env) for v in data]
    if not isinstance(data, str):
        return data
    try:
        return interpolate(data, env.get)
    except InterpolationError:
        return ""  # compose refuses it; its config run says why


def stack_files(project_dir: Path, environ: Mapping[str, str] | None = None) -> list[str]:
    """Files (relative to `project_dir`, inside it) that compose reads to start the project:
    `.env`, the compose files (`compose.env.compose_setup`: what `docker compose` loads there),
    what they include or extend, env files, secrets and configs, single-file bind mounts, and
    the sidecar's own files."""
    root = project_dir.resolve()
    setup = compose_setup(root, environ=environ)
    wanted: list[Path] = [root / ".env", *(root / f for f in SIDECAR_FILES)]
    todo = list(setup.files)
    seen: set[Path] = set()
    while todo:
        file = todo.pop(0).resolve()
        if file in seen or not file.is_file():
            continue
        seen.add(file)
        wanted.append(file)
        try:
            loaded = load_text(file.read_text(encoding="utf-8"), str(file))
        except (OSError, UnicodeDecodeError):
            continue
        if not isinstance(loaded.plain, dict):
            continue
        files, includes = _file_refs(_interpolated(loaded.plain, setup.environ))
        wanted.extend(file.parent / f for f in files)
        todo.extend(file.parent / f for f in includes)
    out: list[str] = []
    for path in wanted:
        absolute = Path(os.path.normpath(path))
        if root in absolute.parents and absolute.is_file():
            rel = absolute.relative_to(root).as_posix()
            if rel not in out:
                out.append(rel)
    return out


def _inside(root: Path, rel: str) -> bool:
    """True when `root/rel` is below `root` with no symbolic link on the way (a link in a
    checked-out commit must not send a copy, or a read, outside the project)."""
    path = root
    for part in Path(rel).parts:
        if part in ("", ".", "..") or path.is_symlink():
            return False
        path = path / part
    return not path.is_symlink()


def copy_missing(source: Path, target: Path, files: Iterable[str]) -> dict[str, str]:
    """Copy each of `files` (relative paths) from `source` to `target` where `target` lacks it
    (a file git does not track); return what was copied, with each file's sha256. Paths that
    pass through a symbolic link, on either side, are skipped. As root, what is made belongs
    to the owner of `target` (the worktree's: the project folder's owner)."""
    owner = hostproc.owner_identity(target)
    copied: dict[str, str] = {}
    for rel in files:
        src, dst = source / rel, target / rel
        if not (_inside(source, rel) and _inside(target, rel)):
            continue
        if not src.is_file() or dst.exists():
            continue
        make_dirs(dst.parent, owner)
        shutil.copy2(src, dst)
        if owner is not None:
            os.lchown(dst, owner.uid, owner.gid)
        copied[rel] = _sha256(dst)
    return copied
