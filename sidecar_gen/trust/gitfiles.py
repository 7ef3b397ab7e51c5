"""The project's git files that decide what git runs on the host, for the approval.

The agent can write the project folder, `.git/` with it, and the user's own git on the host
runs what `.git/config` (and what it includes), `.git/hooks/` and `.git/info/attributes`
name: a filter, a hook, a pager. `sidecar up` makes these read-only in every service that
mounts them (`protect`: the paths that exist; see `startmodel`), and their keyed digests join
the approval (`states`), so `up`, `trust`, `session new` and `doctor` name any change made
another way (while a stack ran without `sidecar up`, or by a container that reaches `.git`
otherwise).

The repository is found the way git finds it, without running git: the nearest `.git`
folder (or `.git` file: a worktree or a submodule) above the project folder. git itself only
reads the configuration files (`host.git.walk_config`, which runs nothing they name): what they
include, whatever the condition, is part of the set.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from sidecar_gen.errors import InputError
from sidecar_gen.fsutil import open_regular
from sidecar_gen.host import git as hostgit
from sidecar_gen.trust.record import ApprovalStore, FileState

MAX_HOOKS = 256
MAX_MODULES = 32
# Entries git itself writes in normal use (a branch's upstream, the author): not
# execution-relevant, and recording them would ask for an approval after every `git push -u`.
IGNORED_KEYS = re.compile(r"branch\..*|user\.(name|email)")
SECRET_KEY = re.compile(r"(?i)token|secret|password|passwd|credential|auth|header|cookie")
URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^@/\s]+)@")


@dataclass(frozen=True)
class Repository:
    """Where git keeps the project's repository: `common` (objects, config, hooks), `own`
    (this work tree's git directory: `common` unless a linked worktree), `top` (the work
    tree's root), `git_file` (the `.git` file of a worktree or submodule checkout, else None)."""

    common: Path
    own: Path
    top: Path
    git_file: Path | None = None


@dataclass(frozen=True)
class GitFiles:
    """The execution-relevant git files of a project: `protect` (existing paths, for
    read-only mounts) and `states` (keyed digests by name, absent files included)."""

    protect: tuple[Path, ...] = ()
    states: dict[str, FileState] = field(default_factory=dict)


def find_repository(directory: Path) -> Repository | None:
    """The repository holding `directory`, found as git does (None: not in one)."""
    current = Path(os.path.realpath(directory))
    for folder in (current, *current.parents):
        dot = folder / ".git"
        try:
            info = dot.lstat()
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode):
            return Repository(common=dot, own=dot, top=folder)
        if stat.S_ISREG(info.st_mode):
            own = _pointed(dot)
            if own is None:
                return None
            common = own
            commondir = own / "commondir"
            if commondir.is_file():
                text = _small_text(commondir).strip()
                common = Path(os.path.normpath(own / text)) if text else own
            return Repository(common=common, own=own, top=folder, git_file=dot)
    return None


def _small_text(path: Path) -> str:
    with os.fdopen(open_regular(path), "rb") as handle:
        return handle.read(4096).decode("utf-8", "replace")


def _pointed(git_file: Path) -> Path | None:
    """The git directory a `.git` file names (`gitdir: PATH`)."""
    try:
        text = _small_text(git_file)
    except InputError:
        return None
    first = text.splitlines()[0] if text else ""
    if not first.startswith("gitdir:"):
        return None
    target = Path(first.removeprefix("gitdir:").strip())
    return Path(os.path.normpath(git_file.parent / target))


def _git_dirs(repo: Repository) -> list[Path]:
    """The repository's git directory and its submodules' (`modules/**`), bounded."""
    dirs = [repo.common]
    todo = [repo.common / "modules"]
    while todo and len(dirs) <= MAX_MODULES:
        folder = todo.pop(0)
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
        except OSError:
            continue
        for child in children:
            if (child / "HEAD").is_file() and (child / "config").is_file():
                dirs.append(child)
                todo.append(child / "modules")
            else:
                todo.append(child)  # a submodule named a/b lives in modules/a/b
    return dirs[:MAX_MODULES + 1]


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _mask(key: str, value: str, store: ApprovalStore) -> str:
    def digest(text: str) -> str:
        return store.digest(text.encode())[:24] + "…"

    if SECRET_KEY.search(key):
        return digest(value)
    return URL_USERINFO.sub(lambda m: m.group("scheme") + digest(m.group("userinfo")) + "@",
                            value)


def config_state(path: Path, top: Path, store: ApprovalStore) -> FileState:
    """A configuration file as its entries (`key=value` lines, in order, as git reads them,
    IGNORED_KEYS left out, secret-looking values masked): a reformatted file is no change."""
    if not _exists(path):
        return FileState(None)
    if shutil.which("git") is None:
        return _raw_state(path, store)
    try:
        entries = hostgit.file_entries(path, top)
    except hostgit.GitError as exc:
        if os.path.isdir(path):
            return FileState(store.digest(b"<directory>"), "(a directory)\n")
        reason = exc.message.rpartition(": ")[2]
        return FileState(store.digest(f"<unreadable: {reason}>".encode()),
                         f"(git cannot read it: {reason})\n")
    kept = [(k, v) for k, v in entries if not IGNORED_KEYS.fullmatch(k)]
    digest = store.digest("\0".join(f"{k}\n{v}" for k, v in kept).encode())
    return FileState(digest, "".join(f"{k}={_mask(k, v, store)}\n" for k, v in kept))


def _raw_state(path: Path, store: ApprovalStore) -> FileState:
    try:
        with os.fdopen(open_regular(path), "rb") as handle:
            data = handle.read(hostgit.MAX_CONFIG + 1)
    except InputError as exc:
        if exc.reason == "is a directory, not a file":
            return FileState(store.digest(b"<directory>"), "(a directory)\n")
        raise
    return FileState(store.digest(data), None)


def folder_state(path: Path, store: ApprovalStore) -> FileState:
    """A folder (hooks) as a listing: one line per entry, `name mode digest` (a link: its
    target), so a diff names the hook that was added or changed."""
    if not _exists(path):
        return FileState(None)
    if path.is_symlink() or not path.is_dir():
        what = f"a link to {os.readlink(path)}" if path.is_symlink() else "a file"
        return FileState(store.digest(f"<{what}>".encode()), f"(not a folder: {what})\n")
    lines: list[str] = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            entry = Path(root) / name
            rel = entry.relative_to(path).as_posix()
            info = entry.lstat()
            if stat.S_ISLNK(info.st_mode):
                what = "-> " + os.readlink(entry)
            elif stat.S_ISREG(info.st_mode):
                what = _digest_file(entry, store)
            else:
                what = "(special file)"
            lines.append(f"{rel} {stat.S_IMODE(info.st_mode):04o} {what}")
            if len(lines) > MAX_HOOKS:
                raise InputError(str(path), f"more than {MAX_HOOKS} entries in a hooks folder")
    text = "".join(line + "\n" for line in lines)
    return FileState(store.digest(text.encode()), text)


def _digest_file(path: Path, store: ApprovalStore) -> str:
    """A file's keyed digest, shortened for the listing (96 bits of a keyed HMAC)."""
    with os.fdopen(open_regular(path), "rb") as handle:
        digest = store.digest_chunks(iter(lambda: handle.read(1 << 20), b""))
    return digest[:len("hmac-sha256:") + 24]


def _name(path: Path, project_dir: Path, folder: bool = False) -> str:
    real = Path(os.path.realpath(path))
    try:
        name = real.relative_to(project_dir).as_posix()
    except ValueError:
        name = str(real)
    return name + "/" if folder else name


def git_files(directory: Path, store: ApprovalStore) -> GitFiles:
    """The project's execution-relevant git files, as `GitFiles` (empty outside a git
    repository)."""
    repo = find_repository(directory)
    if repo is None:
        return GitFiles()
    project_dir = Path(os.path.realpath(directory))
    protect: list[Path] = []
    states: dict[str, FileState] = {}
    configs: list[Path] = []
    if repo.git_file is not None:
        protect.append(repo.git_file)
        states[_name(repo.git_file, project_dir)] = FileState(
            store.digest(_small_text(repo.git_file).encode()), _small_text(repo.git_file))
    dirs = _git_dirs(repo)
    own = [repo.own] if repo.own != repo.common else []
    for git_dir in [*own, *dirs]:
        names = ["config.worktree"] if git_dir in own else ["config", "config.worktree"]
        configs += [git_dir / name for name in names]
        if git_dir in own:
            continue
        for folder in ("hooks", "info"):
            if os.path.isdir(git_dir / folder):
                protect.append(git_dir / folder)
        states[_name(git_dir / "hooks", project_dir, folder=True)] = folder_state(
            git_dir / "hooks", store)
        attributes = git_dir / "info" / "attributes"
        states[_name(attributes, project_dir)] = _raw_or_text(attributes, store)
    if os.path.isdir(repo.common / "worktrees"):
        protect.append(repo.common / "worktrees")
    _, included = _walk(repo, configs)
    for path in [*configs, *included]:
        states[_name(path, project_dir)] = config_state(path, repo.top, store)
        if _exists(path) and path not in protect:
            protect.append(path)
    return GitFiles(tuple(protect), states)


def _configs(repo: Repository) -> list[Path]:
    """The repository's own configuration files (not the user's ~/.gitconfig)."""
    own = [repo.own / "config.worktree"] if repo.own != repo.common else []
    return [*own, repo.common / "config", repo.common / "config.worktree"]


def _walk(repo: Repository, configs: list[Path]) -> tuple[str | None, list[Path]]:
    """(`core.hooksPath` as the repository's configuration sets it, the files it includes)."""
    if shutil.which("git") is None:
        return None, []
    walk = hostgit.walk_config(hostgit.Place(repo.top), roots=configs)
    hooks_path = next((v for _, k, v in reversed(walk.entries)
                       if k.lower() == "core.hookspath"), None)
    return hooks_path, walk.included


def hooks_in_tree(directory: Path) -> Path | None:
    """The folder the repository's `core.hooksPath` names when it is inside the work tree
    (husky's `.husky/`): the agent writes the hooks the user's next commit on the host runs
    there. None otherwise, or outside a git repository."""
    repo = find_repository(directory)
    if repo is None:
        return None
    hooks_path, _ = _walk(repo, _configs(repo))
    if not hooks_path or hooks_path == "/dev/null":
        return None
    folder = Path(os.path.realpath(repo.top / os.path.expanduser(hooks_path)))
    top = Path(os.path.realpath(repo.top))
    git_dir = Path(os.path.realpath(repo.common))
    if _under(folder, top) and not _under(folder, git_dir):
        return folder
    return None


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _raw_or_text(path: Path, store: ApprovalStore) -> FileState:
    """A small text file's keyed digest and copy (None digest: absent)."""
    try:
        with os.fdopen(open_regular(path), "rb") as handle:
            data = handle.read(hostgit.MAX_CONFIG + 1)
    except InputError as exc:
        if exc.reason == "no such file" or isinstance(exc.__context__, NotADirectoryError):
            return FileState(None)
        if exc.reason == "is a directory, not a file":
            return FileState(store.digest(b"<directory>"), "(a directory)\n")
        raise
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return FileState(store.digest(data), text)
