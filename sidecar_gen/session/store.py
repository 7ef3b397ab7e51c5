"""Where sessions are recorded: one folder per session in the user's state directory.

    $XDG_STATE_HOME/claude-sidecar/sessions/<project key>/<NAME>/
        session.json   what `ls`, `exec` and `rm` need (see `SessionRecord`)
        compose.json   the session's compose model (0600: it holds resolved environment values)
        policy/        the bridge.yaml and allowed-domains.txt the session's gate and Claude read,
                       mounted read-only into both

The state directory is outside every project folder and no container mounts it writable, so
nothing the agent (or a routed command) writes can change how a session starts or what its
gate allows. The project key is the source project's compose name plus a hash of its real path:
two checkouts of one repository keep separate sessions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sidecar_gen.errors import ExitCode, SidecarError
from sidecar_gen.fsutil import write_atomic

RECORD_VERSION = 1
RECORD_FILE = "session.json"
MODEL_FILE = "compose.json"
POLICY_DIR = "policy"
# Compose project names: lowercase letters, digits, '-' and '_', starting with a letter or digit.
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
MAX_NAME = 32
MAX_PROJECT = 63  # the session's compose project, `<project>-NAME` (a DNS label's length)


class SessionError(SidecarError):
    """A session operation failed; exit 1 unless the caller's input was wrong (2)."""

    exit_code = ExitCode.FINDINGS


def usage_error(message: str) -> SessionError:
    """A SessionError for bad input (exit 2)."""
    return SessionError(message, exit_code=ExitCode.USAGE)


def check_name(name: str) -> str:
    """Return `name` when it can name a session, else raise a one-line usage error.

    A session's compose project is `<project>-NAME`, so NAME follows compose's project name
    rules; it also names the git branch `sidecar/NAME` and the worktree folder.
    """
    if not name:
        raise usage_error("a session needs a name")
    if len(name) > MAX_NAME:
        raise usage_error(f"session name {name!r} is longer than {MAX_NAME} characters")
    if not _NAME.fullmatch(name):
        hint = name.lower() if _NAME.fullmatch(name.lower()) else None
        suffix = f" (did you mean {hint!r}?)" if hint else ""
        raise usage_error(
            f"session name {name!r} is not a valid compose project name: use lowercase "
            f"letters, digits, '-' and '_', starting with a letter or digit{suffix}")
    return name


def session_project(project: str, name: str) -> str:
    """The compose project of session `name` of compose project `project`."""
    full = f"{project}-{check_name(name)}"
    if len(full) > MAX_PROJECT:
        raise usage_error(f"compose project name {full!r} would be longer than {MAX_PROJECT} "
                          "characters: choose a shorter session name")
    return full


def state_home(environ: dict[str, str] | None = None) -> Path:
    """`$XDG_STATE_HOME/claude-sidecar`, else `~/.local/state/claude-sidecar`."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME", "")
    if not base.startswith("/"):
        base = str(Path(env.get("HOME") or Path.home()) / ".local" / "state")
    return Path(base) / "claude-sidecar"


def source_hash(source: Path) -> str:
    """12 hex digits of the source project folder's real path: its sessions' key."""
    digest = hashlib.sha256(str(source.resolve()).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:12]


def sessions_root(environ: dict[str, str] | None = None) -> Path:
    """The folder holding every project's sessions."""
    return state_home(environ) / "sessions"


@dataclass
class SessionRecord:
    """What is known about one session; stored as `session.json`.

    `source` is the project folder the session was made from and `subdir` its place in the git
    repository (so the session's project folder is `worktree / subdir`); `copied` maps each
    untracked file copied into the worktree (relative to the project folder) to its sha256, so
    `rm` can tell them from the agent's own uncommitted work.
    """

    name: str
    project: str  # the source's compose project
    compose_project: str  # the session's: `<project>-NAME`
    source: str
    worktree: str
    subdir: str
    branch: str
    base: str  # the commit the branch started from
    created: str  # ISO 8601, UTC
    image: str = ""
    git_dir: str = ""  # the worktree's own git directory, as git made it
    copied: dict[str, str] = field(default_factory=dict)
    version: int = RECORD_VERSION

    @property
    def project_dir(self) -> Path:
        """The session's project folder (the source's, inside the worktree)."""
        return Path(self.worktree) / self.subdir if self.subdir else Path(self.worktree)

    def to_json(self) -> str:
        """The record as stored."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> SessionRecord:
        """Parse a stored record; SessionError when it is not one this version wrote."""
        try:
            data: Any = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
                raise ValueError("unknown record version")
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise SessionError(f"{where}: not a session record this version can read "
                               f"({exc}): remove the folder") from None


class SessionStore:
    """The sessions of one source project folder, in `<state>/sessions/<project>-<hash>/`
    (the hash of the folder's real path finds them, whatever the compose project is called)."""

    def __init__(self, source: Path, environ: dict[str, str] | None = None):
        self.source = source.resolve()
        self.base = sessions_root(environ)
        self.hash = source_hash(self.source)

    def folder(self, name: str) -> Path | None:
        """Session `name`'s folder, if it exists."""
        check_name(name)
        for root in sorted(self.base.glob(f"*-{self.hash}")):
            if (root / name).is_dir():
                return root / name
        return None

    def create(self, name: str, project: str) -> Path:
        """Make session `name`'s folder (0700, parents too); usage error when it exists."""
        if self.folder(name) is not None:
            raise usage_error(f"session {name!r} exists: `sidecar session rm {name}` first, "
                              "or choose another name")
        folder = self.base / f"{project}-{self.hash}" / name
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
        return folder

    def save(self, record: SessionRecord) -> None:
        """Write the record (atomically, 0600) into its folder."""
        folder = self.folder(record.name)
        if folder is None:
            raise SessionError(f"session {record.name!r} has no folder to record it in")
        write_atomic(folder / RECORD_FILE, record.to_json(), mode=0o600)

    def load(self, name: str) -> SessionRecord:
        """The record of session `name`; usage error (with the known names) when unknown."""
        folder = self.folder(name)
        path = folder / RECORD_FILE if folder else None
        if path is None or not path.is_file():
            known = ", ".join(r.name for r in self.records()) or "none"
            raise usage_error(f"no session {name!r} for {self.source} (sessions: {known})")
        return SessionRecord.from_json(path.read_text(encoding="utf-8"), str(path))

    def records(self) -> list[SessionRecord]:
        """Every recorded session of this project folder, oldest first."""
        found: list[SessionRecord] = []
        for root in sorted(self.base.glob(f"*-{self.hash}")):
            found.extend(_records_in(root))
        return sorted(found, key=lambda r: (r.created, r.name))

    def delete(self, name: str) -> None:
        """Forget session `name` (its folder and everything in it)."""
        folder = self.folder(name)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _records_in(root: Path) -> list[SessionRecord]:
    out = []
    for path in sorted(root.glob(f"*/{RECORD_FILE}")):
        try:
            out.append(SessionRecord.from_json(path.read_text(encoding="utf-8"), str(path)))
        except (OSError, SessionError):
            continue  # a half-written or foreign folder: not a session to show
    return out


def all_records(environ: dict[str, str] | None = None) -> list[SessionRecord]:
    """Every recorded session of every project."""
    root = sessions_root(environ)
    out: list[SessionRecord] = []
    for project in sorted(p for p in root.glob("*") if p.is_dir()):
        out.extend(_records_in(project))
    return out


def record_for_path(path: Path, environ: dict[str, str] | None = None) -> SessionRecord | None:
    """The session whose worktree holds `path`, if any (commands run inside a session)."""
    here = path.resolve()
    for record in all_records(environ):
        worktree = Path(record.worktree)
        if here == worktree or worktree in here.parents:
            return record
    return None
